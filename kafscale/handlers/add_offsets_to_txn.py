"""AddOffsetsToTxn, v0-4: a transactional producer adds a consumer group's
offsets to its transaction; TxnOffsetCommit then stores them with it.

Versions: v3 is the first flexible version; v4 differs only in what the
client may expect (KIP-890 part 2, not offered here).
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    try:
        await request.transactions.add_offsets(body["transactional_id"], body["producer_id"],
                                               body["producer_epoch"], body["group_id"])
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE}
