"""ListOffsets, v1-11: a partition's earliest or latest offset, the offset
of its largest timestamp, or the first offset at or after a timestamp.

Versions: v1 answers one offset per partition (v0's lists are not spoken);
v2 adds the isolation level: the latest offset of read_committed is the
last stable offset; v4 adds the current leader epoch, checked for
fencing; v7 asks for the max timestamp (KIP-734); v8 for the earliest local
offset (KIP-405), which is the log start, the whole log being "local".

Departures from Kafka: v9's earliest tiered offset and v11's earliest
pending upload (negative timestamps -5, -6) are refused with INVALID_REQUEST.
"""

from kafscale.handlers.common import PartitionLayout, answer_partitions
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import Operation

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4  # KIP-405: the whole log is "local" here
READ_COMMITTED = 1


async def handle(request):
    committed = request.body.get("isolation_level", 0) == READ_COMMITTED

    async def answer(partition_log, wanted, answer):
        await _answer(partition_log, wanted, answer, committed)

    blank = {"timestamp": -1, "offset": -1, "leader_epoch": -1}
    topics = await answer_partitions(request, request.body["topics"], PartitionLayout(), blank, answer,
                                     operation=Operation.DESCRIBE)
    return {"throttle_time_ms": 0, "topics": topics}


async def _answer(partition_log, wanted, answer, committed):
    partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
    if committed and wanted["timestamp"] == LATEST:
        found = partition_log.last_stable_offset, -1
    else:
        found = await _lookup(partition_log, wanted["timestamp"])
    if found is not None:
        answer["offset"], answer["timestamp"] = found
        answer["leader_epoch"] = partition_log.epoch_at(answer["offset"])


async def _lookup(partition_log, timestamp):
    """(offset, timestamp) for the request's timestamp, or None."""
    if timestamp == LATEST:
        return partition_log.high_watermark, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return partition_log.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        return await partition_log.offset_of_max_timestamp()
    if timestamp < 0:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown special timestamp {timestamp}")
    return await partition_log.offset_for_timestamp(timestamp)
