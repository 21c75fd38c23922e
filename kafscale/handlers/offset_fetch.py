"""OffsetFetch, v1-10: a group's committed offsets, read from the metadata
store through the group's coordinator.

Versions: v1 (the oldest spoken) reports errors per partition only; v2 asks
for every committed offset with a null topic list and adds a group-level
error; v6 is the first flexible version; v7 asks for stable offsets, always
given here since nothing is pending in a transaction; v8 asks about several
groups at once; v9 adds the member id and epoch of KIP-848, ignored; v10
names topics by id.

Departures from Kafka: none that a client sees. A partition without a
committed offset answers -1, so that the consumer's auto.offset.reset
decides where it starts.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import topic_or_refusal
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import Operation, ResourceType

# What a partition without a committed offset answers.
NO_OFFSET = -1
NO_LEADER_EPOCH = -1
NO_METADATA = ""


async def handle(request):
    body, version = request.body, request.api_version
    if version >= 8:
        return {
            "throttle_time_ms": 0,
            "groups": [await _fetch(request, group["group_id"], group["topics"], version) for group in body["groups"]],
        }
    fetched = await _fetch(request, body["group_id"], body["topics"], version)
    return {"throttle_time_ms": 0, "topics": fetched["topics"], "error_code": fetched["error_code"]}


async def _fetch(request, group_id, requested, version):
    """One group's answer: {"group_id", "topics", "error_code"} in the v8
    layout, whose topic and partition entries earlier versions share.
    ``requested`` None asks for every committed offset."""
    if not authorization.allowed(request, Operation.DESCRIBE, ResourceType.GROUP, group_id):
        error = ErrorCode.GROUP_AUTHORIZATION_FAILED
        if version < 2 and requested is not None:
            topics = [_topic_entry(topic, [_partition(i, None, error) for i in topic["partition_indexes"]])
                      for topic in requested]
            return {"group_id": group_id, "topics": topics, "error_code": error}
        return {"group_id": group_id, "topics": [], "error_code": error}
    if requested is None:
        wanted = None
    else:
        named = [(topic, topic_or_refusal(request, topic, Operation.DESCRIBE)) for topic in requested]
        wanted = {
            (info.name, index)
            for topic, info in named if not isinstance(info, KafkaError)
            for index in topic["partition_indexes"]
        }
    try:
        committed = await request.groups.fetch_offsets(group_id, wanted)
    except REFUSALS as e:
        e = kafka_error(e)
        if version < 2 and requested is not None:
            # v1 has no group-level error: each partition carries it.
            topics = [_topic_entry(topic, [_partition(i, None, e.code) for i in topic["partition_indexes"]])
                      for topic in requested]
            return {"group_id": group_id, "topics": topics, "error_code": e.code}
        return {"group_id": group_id, "topics": [], "error_code": e.code}
    if requested is None:
        # Every committed offset: of the topics the principal may describe.
        committed = {key: offset for key, offset in committed.items()
                     if authorization.allowed(request, Operation.DESCRIBE, ResourceType.TOPIC, key[0])}
        topics = _all_committed(request.topics, committed, version)
    else:
        topics = []
        for topic, info in named:
            if isinstance(info, KafkaError):
                partitions = [_partition(i, None, info.code) for i in topic["partition_indexes"]]
            else:
                partitions = [
                    _partition(i, committed.get((info.name, i)), ErrorCode.NONE) for i in topic["partition_indexes"]
                ]
            topics.append(_topic_entry(topic, partitions))
    return {"group_id": group_id, "topics": topics, "error_code": ErrorCode.NONE}


def _all_committed(known, committed, version):
    by_topic = {}
    for (name, index), offset in sorted(committed.items()):
        by_topic.setdefault(name, []).append(_partition(index, offset, ErrorCode.NONE))
    topics = []
    for name, partitions in by_topic.items():
        if version >= 10:
            info = known.get(name)
            if info is None:
                continue  # deleted since: no id to name it by
            topics.append({"topic_id": info.topic_id, "partitions": partitions})
        else:
            topics.append({"name": name, "partitions": partitions})
    return topics


def _topic_entry(topic, partitions):
    return {"name": topic.get("name"), "topic_id": topic.get("topic_id"), "partitions": partitions}


def _partition(index, committed, error):
    if committed is None:
        return {
            "partition_index": index,
            "committed_offset": NO_OFFSET,
            "committed_leader_epoch": NO_LEADER_EPOCH,
            "metadata": NO_METADATA,
            "error_code": error,
        }
    return {
        "partition_index": index,
        "committed_offset": committed.offset,
        "committed_leader_epoch": committed.leader_epoch,
        "metadata": committed.metadata,
        "error_code": error,
    }
