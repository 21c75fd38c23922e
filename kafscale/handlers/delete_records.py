"""DeleteRecords, v0-2: advance a partition's log start offset; the
segments wholly below it leave the manifest, then the bucket (see
:mod:`kafscale.storage.retention`).

Versions: v2 is the first flexible version; the others are the same.
An offset of -1 means the high watermark, as in Kafka.

Departures from Kafka: segments go whole, so the bytes below the new start
that share a segment with records above it stay in the bucket (unreadable)
until retention drops that segment.
"""

from kafscale.handlers.common import PartitionLayout, answer_partitions
from kafscale.metadata.acls import Operation
from kafscale.storage.retention import drop_segments_below

HIGH_WATERMARK = -1


async def handle(request):
    topics = await answer_partitions(request, request.body["topics"], PartitionLayout(), {"low_watermark": -1},
                                     _delete_below, operation=Operation.DELETE)
    return {"throttle_time_ms": 0, "topics": topics}


async def _delete_below(partition_log, wanted, answer):
    offset = wanted["offset"]
    if offset == HIGH_WATERMARK:
        offset = partition_log.high_watermark
    await drop_segments_below(partition_log, offset)
    answer["low_watermark"] = partition_log.log_start_offset
