"""OffsetCommit, v2-10: a group's member (or an admin, for an empty
group) commits consumed offsets, kept in the metadata store through the
group's coordinator. A group's commits are written in order; commits
arriving during a write go together in the next.

Versions: v2 (the oldest spoken) adds a retention time, ignored since
offsets live as long as their group; v6 adds the leader epoch; v7 the group
instance id; v8 is the first flexible version; v10 names topics by id
(KIP-848). Before v9 a commit to a group that is gone is answered
ILLEGAL_GENERATION, which older clients understand, rather than
GROUP_ID_NOT_FOUND.

Departures from Kafka: offsets never expire while their group exists
(offsets.retention.minutes is not applied).
"""

import time

from kafscale.handlers import authorization
from kafscale.handlers.common import topic_or_refusal
from kafscale.metadata.interfaces import CommittedOffset
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import Operation, ResourceType

NO_LEADER_EPOCH = -1
NO_METADATA = ""


async def handle(request):
    body, version = request.body, request.api_version
    max_metadata = request.config.offset_metadata_max_bytes
    commit_ms = int(time.time() * 1000)
    offsets = {}
    topics = []
    group_allowed = authorization.allowed(request, Operation.READ, ResourceType.GROUP, body["group_id"])
    for topic in body["topics"]:
        info = topic_or_refusal(request, topic, Operation.READ)
        partitions = []
        for partition in topic["partitions"]:
            index = partition["partition_index"]
            metadata = partition["committed_metadata"]
            if not group_allowed:
                error = ErrorCode.GROUP_AUTHORIZATION_FAILED
            elif isinstance(info, KafkaError):
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
            await request.groups.commit_offsets(
                body["group_id"], body["member_id"], body.get("group_instance_id"),
                body["generation_id_or_member_epoch"], offsets,
            )
        except REFUSALS as e:
            error = kafka_error(e).code
            if error == ErrorCode.GROUP_ID_NOT_FOUND and version < 9:
                # Older clients know a commit for a group that is gone as
                # one from a stale generation.
                error = ErrorCode.ILLEGAL_GENERATION
            for topic in topics:
                for partition in topic["partitions"]:
                    if partition["error_code"] == ErrorCode.NONE:
                        partition["error_code"] = error
    return {"throttle_time_ms": 0, "topics": topics}
