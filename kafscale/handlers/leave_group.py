"""LeaveGroup, v0-5: members leave a group, which rebalances the others at
once rather than after the leavers' session timeouts.

Versions: v3 lets one request remove several members, each by member id or
by group instance id (KIP-345), with an error for each; before, one member
leaves and its error is the answer's. v4 is the first flexible version; v5
adds a reason, which we ignore.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    body, version = request.body, request.api_version
    if version < 3:
        leaving = [(body["member_id"], None)]
    else:
        leaving = [(m["member_id"], m["group_instance_id"]) for m in body["members"]]
    try:
        authorization.check_group(request, Operation.READ, body["group_id"])
        refusals = await request.groups.leave_group(body["group_id"], leaving)
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code, "members": []}
    errors = [ErrorCode.NONE if refusal is None else kafka_error(refusal).code for refusal in refusals]
    if version < 3:
        # One member, whose error is the response's.
        return {"throttle_time_ms": 0, "error_code": errors[0]}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
            for (member_id, instance_id), error in zip(leaving, errors)
        ],
    }
