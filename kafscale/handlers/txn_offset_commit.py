"""TxnOffsetCommit, v0-5: a transactional producer's offsets for a consumer
group, kept with its transaction and committed (or dropped) with it.

The offsets are stored in the transaction's own state in the metadata
store, by a compare-and-swap that refuses them once the transaction is no
longer ongoing (kafscale.coordinator.transactions): offsets that arrive
after the transaction ended are never applied to a later one.

Versions: v2 adds the committed leader epoch; v3 is the first flexible
version and adds the member's generation and ids (KIP-447); v4-5 differ
only in what the client may expect.

From v3 the member, instance and generation the offsets were read under
are checked against the group (KIP-447): a zombie consumer's offsets get
UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID or ILLEGAL_GENERATION. The request
goes to the group's coordinator (NOT_COORDINATOR elsewhere).
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.metadata.interfaces import CommittedOffset
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    now_ms = int(request.clock.seconds() * 1000)
    limit = request.config.offset_metadata_max_bytes
    offsets = {}
    codes = {}
    for topic in body["topics"]:
        for partition in topic["partitions"]:
            key = (topic["name"], partition["partition_index"])
            metadata = partition["committed_metadata"]
            if metadata is not None and len(metadata.encode()) > limit:
                codes[key] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            offsets[key] = CommittedOffset(partition["committed_offset"], partition.get("committed_leader_epoch", -1),
                                           metadata or "", now_ms)
    code = ErrorCode.NONE
    if offsets:
        try:
            if "generation_id" in body:
                await request.groups.check_txn_offset_commit(body["group_id"], body["member_id"],
                                                             body["group_instance_id"], body["generation_id"])
            await request.transactions.commit_offsets(body["transactional_id"], body["producer_id"],
                                                      body["producer_epoch"], body["group_id"], offsets)
        except REFUSALS as e:
            code = kafka_error(e).code
    return {"throttle_time_ms": 0, "topics": [
        {"name": topic["name"], "partitions": [
            {"partition_index": p["partition_index"],
             "error_code": codes.get((topic["name"], p["partition_index"]), code)}
            for p in topic["partitions"]]}
        for topic in body["topics"]]}
