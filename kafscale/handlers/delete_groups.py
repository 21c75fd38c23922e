"""DeleteGroups, v0-2: delete empty groups with their committed offsets.
A group with members is refused with NON_EMPTY_GROUP, one this broker does
not coordinate with NOT_COORDINATOR, as in Kafka.

Versions: v1 is the same as v0; v2 is the first flexible version.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    results = []
    for group_id in request.body["groups_names"]:
        try:
            authorization.check_group(request, Operation.DELETE, group_id)
            await request.groups.delete_group(group_id)
        except REFUSALS as e:
            results.append({"group_id": group_id, "error_code": kafka_error(e).code})
        else:
            results.append({"group_id": group_id, "error_code": ErrorCode.NONE})
    return {"throttle_time_ms": 0, "results": results}
