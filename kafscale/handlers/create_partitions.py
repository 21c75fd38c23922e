"""CreatePartitions, v0-3: a topic grows to more partitions; the broker
takes up the new ones before it answers, so a client may produce to them
at once.

Versions: v2 is the first flexible version; v3 may be throttled in Kafka
(KIP-599), never here.

Departures from Kafka: partitions are placed by the brokers' assignment, so
explicit replica assignments are refused with INVALID_REPLICA_ASSIGNMENT.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.handlers.validation import check_named_once, named_more_than_once
from kafscale.protocol.errors import ErrorCode
from kafscale.security.acls import Operation


async def handle(request):
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
    results = []
    for topic in body["topics"]:
        name, count = topic["name"], topic["count"]
        result = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        try:
            authorization.check_topic(request, Operation.ALTER, name)
            check_named_once("topic", name, repeated)
            await request.topics.add_partitions(name, count, assigned=bool(topic["assignments"]),
                                               validate_only=body["validate_only"])
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
