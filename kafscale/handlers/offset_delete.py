"""OffsetDelete, v0: delete a group's committed offsets for some
partitions (``kafka-consumer-groups --delete-offsets``, AdminClient's
delete_consumer_group_offsets).

As in Kafka: a group with no members loses the offsets asked for; one with
members keeps those of topics its consumers subscribe to
(GROUP_SUBSCRIBED_TO_TOPIC for each such partition) and loses the others; a
group with members that is not a consumer group is refused whole with
NON_EMPTY_GROUP, and a group with neither members nor offsets with
GROUP_ID_NOT_FOUND. A partition of a topic that does not exist answers
UNKNOWN_TOPIC_OR_PARTITION.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    known = {}
    for topic in body["topics"]:
        info = request.topics.get(topic["name"])
        for partition in topic["partitions"]:
            index = partition["partition_index"]
            known[topic["name"], index] = info is not None and 0 <= index < info.partitions
    try:
        deleted = await request.groups.delete_offsets(body["group_id"], [key for key, ok in known.items() if ok])
    except REFUSALS as e:
        return {"error_code": kafka_error(e).code, "throttle_time_ms": 0, "topics": []}
    topics = []
    for topic in body["topics"]:
        partitions = []
        for partition in topic["partitions"]:
            key = topic["name"], partition["partition_index"]
            if not known[key]:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif deleted[key] is None:
                code = ErrorCode.NONE
            else:
                code = kafka_error(deleted[key]).code
            partitions.append({"partition_index": key[1], "error_code": code})
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"error_code": ErrorCode.NONE, "throttle_time_ms": 0, "topics": topics}
