"""DescribeProducers, v0: the idempotent and transactional producers a
partition this broker owns knows, with the first offset of each one's open
transaction."""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    topics = []
    for topic in request.body["topics"]:
        partitions = []
        for index in topic["partition_indexes"]:
            answer = {"partition_index": index, "error_code": ErrorCode.NONE, "error_message": None,
                      "active_producers": []}
            try:
                producers = await request.logs.log_for(topic["name"], index).active_producers()
            except REFUSALS as e:
                refusal = kafka_error(e)
                answer["error_code"], answer["error_message"] = refusal.code, refusal.message
            else:
                answer["active_producers"] = [
                    {"producer_id": producer_id, "producer_epoch": epoch, "last_sequence": last_sequence,
                     "last_timestamp": last_seen_ms, "coordinator_epoch": -1, "current_txn_start_offset": first}
                    for producer_id, epoch, last_sequence, last_seen_ms, first in producers]
            partitions.append(answer)
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
