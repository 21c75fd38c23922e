"""ListGroups, v0-5: the groups this broker coordinates, with their states.
A client lists the whole cluster by asking every broker.

Versions: v3 is the first flexible version; v4 filters by state (KIP-518);
v5 filters by group type (KIP-848): every group here is "classic".

Authorization: a principal that may DESCRIBE the cluster sees every
group, another only those it may DESCRIBE.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType

GROUP_TYPE = "classic"


async def handle(request):
    body = request.body
    states = {s.lower() for s in body.get("states_filter", ())}
    types = {t.lower() for t in body.get("types_filter", ())}
    if types and GROUP_TYPE not in types:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": []}
    try:
        summaries = await request.groups.list_groups()
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code, "groups": []}
    if not authorization.allowed(request, Operation.DESCRIBE, ResourceType.CLUSTER):
        summaries = [s for s in summaries
                     if authorization.allowed(request, Operation.DESCRIBE, ResourceType.GROUP, s.group_id)]
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "groups": [
            {
                "group_id": s.group_id,
                "protocol_type": s.protocol_type,
                "group_state": s.state,
                "group_type": GROUP_TYPE,
            }
            for s in summaries
            if not states or s.state.lower() in states
        ],
    }
