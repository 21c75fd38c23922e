"""Heartbeat, v0-4: a member of the current generation says it is alive;
the answer tells it when a rebalance has begun (REBALANCE_IN_PROGRESS), so
that it rejoins.

Versions: v3 adds the group instance id (static membership); v4 is the
first flexible version.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    body = request.body
    try:
        authorization.check_group(request, Operation.READ, body["group_id"])
        await request.groups.heartbeat(
            body["group_id"], body["member_id"], body.get("group_instance_id"), body["generation_id"]
        )
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE}
