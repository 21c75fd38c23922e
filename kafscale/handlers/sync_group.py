"""SyncGroup, v0-5: the leader hands in the assignment it computed, and
every member of the generation is answered with its own part.

Versions: v3 adds the group instance id (static membership); v4 is the
first flexible version; v5 sends the protocol type and name, which must
match the group's (INCONSISTENT_GROUP_PROTOCOL otherwise, KIP-559).

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    body = request.body
    assignments = {a["member_id"]: a["assignment"] for a in body["assignments"]}
    try:
        authorization.check_group(request, Operation.READ, body["group_id"])
        result = await request.groups.sync_group(
            body["group_id"], body["member_id"], body.get("group_instance_id"), body["generation_id"],
            body.get("protocol_type"), body.get("protocol_name"), assignments,
        )
    except REFUSALS as e:
        return {"throttle_time_ms": 0, "error_code": kafka_error(e).code, "assignment": b""}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }
