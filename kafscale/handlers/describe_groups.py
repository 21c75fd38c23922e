"""DescribeGroups, v0-6: each group's state, protocol and members (with
their metadata and assignments).

Versions: v3 asks for authorized operations; v4 adds members' group instance
ids; v5 is the first flexible version; v6 answers an unknown group with
GROUP_ID_NOT_FOUND (KIP-1043), where older versions describe it as Dead
without error.

Departures from Kafka: none that a client sees. A group this broker does not
coordinate answers NOT_COORDINATOR, as in Kafka.
"""

from kafscale.handlers.common import OPERATIONS_NOT_REQUESTED
from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType

async def handle(request):
    body, version = request.body, request.api_version
    return {
        "throttle_time_ms": 0,
        "groups": [await _describe(request, group_id, version, body.get("include_authorized_operations"))
                   for group_id in body["groups"]],
    }


async def _describe(request, group_id, version, with_operations):
    if not authorization.allowed(request, Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return _described(group_id, "", OPERATIONS_NOT_REQUESTED, ErrorCode.GROUP_AUTHORIZATION_FAILED)
    operations = (authorization.operations(request, ResourceType.GROUP, group_id) if with_operations
                  else OPERATIONS_NOT_REQUESTED)
    try:
        summary = await request.groups.describe_group(group_id)
    except REFUSALS as e:
        e = kafka_error(e)
        if e.code != ErrorCode.GROUP_ID_NOT_FOUND:
            return _described(group_id, "", OPERATIONS_NOT_REQUESTED, e.code)
        if version < 6:
            # Before v6 an unknown group is described as Dead, without error.
            return _described(group_id, "Dead", operations)
        return _described(group_id, "Dead", operations, e.code, e.message)
    described = _described(group_id, summary.state, operations)
    described["protocol_type"] = summary.protocol_type
    described["protocol_data"] = summary.protocol_name
    described["members"] = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "member_metadata": m.metadata,
            "member_assignment": m.assignment,
        }
        for m in summary.members
    ]
    return described


def _described(group_id, state, operations, error=ErrorCode.NONE, message=None):
    return {
        "error_code": error,
        "error_message": message,
        "group_id": group_id,
        "group_state": state,
        "protocol_type": "",
        "protocol_data": "",
        "members": [],
        "authorized_operations": operations,
    }
