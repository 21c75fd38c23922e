"""DescribeTransactions, v0: the state of transactional ids this broker
coordinates (others are answered NOT_COORDINATOR, as Kafka does)."""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    answers = []
    for transactional_id in request.body["transactional_ids"]:
        answer = {"error_code": ErrorCode.NONE, "transactional_id": transactional_id, "transaction_state": "",
                  "transaction_timeout_ms": 0, "transaction_start_time_ms": -1, "producer_id": -1,
                  "producer_epoch": -1, "topics": []}
        try:
            state = await request.transactions.describe(transactional_id)
        except REFUSALS as e:
            answer["error_code"] = kafka_error(e).code
        else:
            if state is None:
                answer["error_code"] = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
            else:
                topics = {}
                for topic, partition in state["partitions"]:
                    topics.setdefault(topic, []).append(partition)
                answer.update(transaction_state=state["state"], transaction_timeout_ms=state["timeout_ms"],
                              transaction_start_time_ms=state["started_ms"], producer_id=state["producer_id"],
                              producer_epoch=state["producer_epoch"],
                              topics=[{"topic": t, "partitions": p} for t, p in sorted(topics.items())])
        answers.append(answer)
    return {"throttle_time_ms": 0, "transaction_states": answers}
