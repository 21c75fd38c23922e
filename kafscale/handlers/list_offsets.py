"""ListOffsets: earliest, latest, max timestamp, and by timestamp."""

from kafscale.handlers import STORAGE_ERRORS, handles
from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

log = logger("kafscale.handlers.list_offsets")

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4  # KIP-405: the whole log is "local" here


@handles(ApiKey.LIST_OFFSETS)
async def list_offsets(request):
    broker = request.broker
    topics = []
    for topic in request.body["topics"]:
        partitions = []
        for wanted in topic["partitions"]:
            answer = {"partition_index": wanted["partition_index"], "error_code": ErrorCode.NONE,
                      "timestamp": -1, "offset": -1, "leader_epoch": -1}
            try:
                partition_log = broker.log_for(topic["name"], wanted["partition_index"])
                partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
                found = await _lookup(partition_log, wanted["timestamp"])
            except KafkaError as e:
                answer["error_code"] = e.code
            except STORAGE_ERRORS as e:
                # Lookups by timestamp read segments.
                log.warn("ListOffsets of {topic}-{partition} failed: {error}", topic=topic["name"],
                         partition=wanted["partition_index"], error=e)
                answer["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
            else:
                if found is not None:
                    answer["offset"], answer["timestamp"] = found
                    answer["leader_epoch"] = partition_log.epoch_at(answer["offset"])
            partitions.append(answer)
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}


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
