"""CreatePartitions, v0-3: a topic grows to more partitions; the broker
takes up the new ones before it answers, so a client may produce to them
at once.

Versions: v2 is the first flexible version; v3 may be throttled in Kafka
(KIP-599), never here.

Departures from Kafka: a replica assignment for the new partitions is
checked as Kafka checks it (one list per new partition, live brokers, as
long as each other) but does not place them: their owners are the brokers'
assignment.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.handlers.validation import check_named_once, named_more_than_once
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
    live_brokers = frozenset(broker.node_id for broker in request.view.live_brokers())
    results = []
    for topic in body["topics"]:
        name, count = topic["name"], topic["count"]
        result = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        assignments = topic["assignments"]
        try:
            authorization.check_topic(request, Operation.ALTER, name)
            check_named_once("topic", name, repeated)
            await request.topics.add_partitions(
                name, count, assignments=[entry["broker_ids"] for entry in assignments] if assignments else None,
                live_brokers=live_brokers, validate_only=body["validate_only"])
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
