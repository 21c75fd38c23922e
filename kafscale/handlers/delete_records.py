"""DeleteRecords: advance a partition's log start offset; the segments
wholly below it leave the manifest, then the bucket."""

from kafscale.handlers import handles
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey
from kafscale.storage.retention import drop_segments_below

HIGH_WATERMARK = -1


@handles(ApiKey.DELETE_RECORDS)
async def delete_records(request):
    broker = request.broker
    topics = []
    for topic in request.body["topics"]:
        partitions = []
        for wanted in topic["partitions"]:
            answer = {"partition_index": wanted["partition_index"], "low_watermark": -1,
                      "error_code": ErrorCode.NONE}
            partitions.append(answer)
            try:
                partition_log = broker.log_for(topic["name"], wanted["partition_index"])
                offset = wanted["offset"]
                if offset == HIGH_WATERMARK:
                    offset = partition_log.high_watermark
                await drop_segments_below(partition_log, offset)
            except KafkaError as e:
                answer["error_code"] = e.code
                continue
            answer["low_watermark"] = partition_log.log_start_offset
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
