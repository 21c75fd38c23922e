"""ListTransactions, v0-1: the transactional ids this broker coordinates
(an admin client asks every broker), filtered by state, producer id and,
from v1, by how long their transaction has been under way."""

from kafscale.coordinator.transactions import STATES
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    body = request.body
    states = set(body["state_filters"])
    producer_ids = set(body["producer_id_filters"])
    duration = body.get("duration_filter", -1)
    now_ms = int(request.clock.seconds() * 1000)
    try:
        every = await request.transactions.all()
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code, "unknown_state_filters": [],
                "transaction_states": []}
    found = []
    for transactional_id, state in sorted(every.items()):
        if not request.view.coordinates(transactional_id):
            continue
        if states and state["state"] not in states or producer_ids and state["producer_id"] not in producer_ids:
            continue
        if duration >= 0 and (state["started_ms"] < 0 or now_ms - state["started_ms"] < duration):
            continue
        found.append({"transactional_id": transactional_id, "producer_id": state["producer_id"],
                      "transaction_state": state["state"]})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE,
            "unknown_state_filters": sorted(states - set(STATES)), "transaction_states": found}
