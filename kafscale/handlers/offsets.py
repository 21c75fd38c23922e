"""OffsetCommit and OffsetFetch, every version: committed offsets, kept in
the metadata store through the group's coordinator (``broker.groups``)."""

import time

from kafscale.handlers import handles
from kafscale.metadata.interfaces import CommittedOffset
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

# What a partition without a committed offset answers, so that the
# consumer's auto.offset.reset decides where it starts.
NO_OFFSET = -1
NO_LEADER_EPOCH = -1
NO_METADATA = ""


def _requested_topic(broker, topic, version):
    """The TopicInfo a request's topic entry names (by id from v10), or a
    KafkaError saying why there is none."""
    if version >= 10:
        info = broker.topic_by_id(topic["topic_id"])
        return info if info is not None else KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
    info = broker.topics.get(topic["name"])
    return info if info is not None else KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


@handles(ApiKey.OFFSET_COMMIT)
async def offset_commit(request):
    body, version, broker = request.body, request.api_version, request.broker
    max_metadata = broker.config.offset_metadata_max_bytes
    commit_ms = int(time.time() * 1000)
    offsets = {}
    topics = []
    for topic in body["topics"]:
        info = _requested_topic(broker, topic, version)
        partitions = []
        for partition in topic["partitions"]:
            index = partition["partition_index"]
            metadata = partition["committed_metadata"]
            if isinstance(info, KafkaError):
                error = info.code
            elif not 0 <= index < info.partitions:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif metadata is not None and len(metadata) > max_metadata:
                error = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                error = ErrorCode.NONE
                offsets[(info.name, index)] = CommittedOffset(
                    partition["committed_offset"],
                    partition.get("committed_leader_epoch", NO_LEADER_EPOCH),
                    NO_METADATA if metadata is None else metadata,
                    commit_ms,
                )
            partitions.append({"partition_index": index, "error_code": error})
        topics.append({"name": topic.get("name"), "topic_id": topic.get("topic_id"), "partitions": partitions})
    if offsets:
        try:
            await broker.groups.commit_offsets(
                body["group_id"], body["member_id"], body.get("group_instance_id"),
                body["generation_id_or_member_epoch"], offsets,
            )
        except KafkaError as e:
            error = e.code
            if error == ErrorCode.GROUP_ID_NOT_FOUND and version < 9:
                # Older clients know a commit for a group that is gone as
                # one from a stale generation.
                error = ErrorCode.ILLEGAL_GENERATION
            for topic in topics:
                for partition in topic["partitions"]:
                    if partition["error_code"] == ErrorCode.NONE:
                        partition["error_code"] = error
    return {"throttle_time_ms": 0, "topics": topics}


@handles(ApiKey.OFFSET_FETCH)
async def offset_fetch(request):
    body, version, broker = request.body, request.api_version, request.broker
    if version >= 8:
        return {
            "throttle_time_ms": 0,
            "groups": [await _fetch(broker, group["group_id"], group["topics"], version) for group in body["groups"]],
        }
    fetched = await _fetch(broker, body["group_id"], body["topics"], version)
    return {"throttle_time_ms": 0, "topics": fetched["topics"], "error_code": fetched["error_code"]}


async def _fetch(broker, group_id, requested, version):
    """One group's answer: {"group_id", "topics", "error_code"} in the v8
    layout, whose topic and partition entries earlier versions share.
    ``requested`` None asks for every committed offset."""
    if requested is None:
        wanted = None
    else:
        named = [(topic, _requested_topic(broker, topic, version)) for topic in requested]
        wanted = {
            (info.name, index)
            for topic, info in named if not isinstance(info, KafkaError)
            for index in topic["partition_indexes"]
        }
    try:
        committed = await broker.groups.fetch_offsets(group_id, wanted)
    except KafkaError as e:
        if version < 2 and requested is not None:
            # v1 has no group-level error: each partition carries it.
            topics = [_topic_entry(topic, [_partition(i, None, e.code) for i in topic["partition_indexes"]])
                      for topic in requested]
            return {"group_id": group_id, "topics": topics, "error_code": e.code}
        return {"group_id": group_id, "topics": [], "error_code": e.code}
    if requested is None:
        topics = _all_committed(broker, committed, version)
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


def _all_committed(broker, committed, version):
    by_topic = {}
    for (name, index), offset in sorted(committed.items()):
        by_topic.setdefault(name, []).append(_partition(index, offset, ErrorCode.NONE))
    topics = []
    for name, partitions in by_topic.items():
        if version >= 10:
            info = broker.topics.get(name)
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
