"""CreatePartitions, v0-3: a topic grows to more partitions; the broker
takes up the new ones before it answers, so a client may produce to them
at once.

Versions: v2 is the first flexible version; v3 may be throttled in Kafka
(KIP-599), never here.

Departures from Kafka: partitions are placed by the brokers' assignment, so
explicit replica assignments are refused with INVALID_REPLICA_ASSIGNMENT.
"""

from kafscale.handlers.common import known_topic
from kafscale.handlers.validation import (
    check_named_once,
    check_no_assignments,
    check_partitions_grow,
    named_more_than_once,
)
from kafscale.protocol.errors import ErrorCode, KafkaError


async def handle(request):
    broker = request.broker
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
    results = []
    for topic in body["topics"]:
        name, count = topic["name"], topic["count"]
        result = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        try:
            check_named_once("topic", name, repeated)
            info = known_topic(broker, name)
            check_no_assignments(topic["assignments"])
            check_partitions_grow(info, count)
            if body["validate_only"]:
                continue
            await broker.add_partitions(name, count)
        except KafkaError as e:
            result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
