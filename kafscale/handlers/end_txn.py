"""EndTxn, v0-4: commit or abort a producer's transaction. Answered once
every partition of the transaction holds its marker and the transaction's
offsets are committed, so whatever the producer does next sees the outcome.

Versions: v3 is the first flexible version; v4 adds no field (KIP-890's
TRANSACTION_ABORTABLE may be answered from it).
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    try:
        await request.transactions.end_transaction(body["transactional_id"], body["producer_id"],
                                                   body["producer_epoch"], body["committed"])
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE}
