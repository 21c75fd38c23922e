"""AddPartitionsToTxn, v0-5: a transactional producer adds the partitions
it is about to write to its transaction (kafscale.coordinator.transactions).

Versions: v3 is the first flexible version; v4 batches transactions and
adds the verify-only form brokers use to check that a partition is in a
producer's transaction (KIP-890 part 1), answered here the same way; v5
differs only in what the client may expect (KIP-890 part 2, whose epoch
bump per transaction is not offered: no transaction.version feature is
advertised).
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    if request.api_version <= 3:
        results = await _one(request, body["v3_and_below_transactional_id"], body["v3_and_below_producer_id"],
                             body["v3_and_below_producer_epoch"], False, body["v3_and_below_topics"])
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": results}
    answers = []
    for transaction in body["transactions"]:
        results = await _one(request, transaction["transactional_id"], transaction["producer_id"],
                             transaction["producer_epoch"], transaction["verify_only"], transaction["topics"])
        answers.append({"transactional_id": transaction["transactional_id"], "topic_results": results})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results_by_transaction": answers}


async def _one(request, transactional_id, producer_id, epoch, verify_only, topics):
    wanted = [(topic["name"], partition) for topic in topics for partition in topic["partitions"]]
    codes = {}
    for topic, partition in wanted:
        info = request.topics.get(topic)
        if info is None or not 0 <= partition < info.partitions:
            codes[topic, partition] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    known = [p for p in wanted if p not in codes]
    if codes:
        # Kafka adds none of them when one is refused.
        for p in known:
            codes[p] = ErrorCode.OPERATION_NOT_ATTEMPTED
    elif verify_only:
        try:
            held = await request.transactions.verify(transactional_id, producer_id, epoch, known)
        except REFUSALS as e:
            held = None
            code = kafka_error(e).code
        for p in known:
            codes[p] = code if held is None else (ErrorCode.NONE if held[p] else ErrorCode.INVALID_TXN_STATE)
    else:
        try:
            await request.transactions.add_partitions(transactional_id, producer_id, epoch, known)
            code = ErrorCode.NONE
        except REFUSALS as e:
            code = kafka_error(e).code
        for p in known:
            codes[p] = code
    results = {}
    for (topic, partition) in wanted:
        results.setdefault(topic, []).append({"partition_index": partition,
                                              "partition_error_code": codes[topic, partition]})
    return [{"name": topic, "results_by_partition": partitions} for topic, partitions in results.items()]
