"""Consumer group membership and administration: JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, DescribeGroups, ListGroups and DeleteGroups, every
version, answered by the broker's GroupCoordinator (``broker.groups``)."""

from kafscale.coordinator.group import JoinRequest, JoinResult
from kafscale.handlers import handles
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

# DescribeGroups sends this when authorized operations were not asked for;
# kafka-python chokes on -1 (NOTES.md).
OPERATIONS_NOT_REQUESTED = -(2**31)
# When they were: with no authorizer, every operation Kafka defines on a
# group is allowed (READ 3, DELETE 6, DESCRIBE 8, as bits).
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
GROUP_TYPE = "classic"


def _client_host(request):
    # Kafka shows a member's host as Java prints an InetAddress.
    return "/" + request.client_host


@handles(ApiKey.JOIN_GROUP)
async def join_group(request):
    body, version = request.body, request.api_version
    session_timeout_ms = body["session_timeout_ms"]
    join = JoinRequest(
        member_id=body["member_id"],
        group_instance_id=body.get("group_instance_id"),
        client_id=request.client_id or "",
        client_host=_client_host(request),
        session_timeout_ms=session_timeout_ms,
        # v0 has no rebalance timeout: the session timeout serves for both.
        rebalance_timeout_ms=body["rebalance_timeout_ms"] if version >= 1 else session_timeout_ms,
        protocol_type=body["protocol_type"],
        protocols=[(p["name"], p["metadata"]) for p in body["protocols"]],
        require_known_member_id=version >= 4,
    )
    try:
        result = await request.broker.groups.join_group(body["group_id"], join)
    except KafkaError as e:
        result = JoinResult(e.code, join.member_id)
    leader_id, members = result.leader_id, result.members
    if result.skip_assignment and version < 9:
        # A static leader back in a stable group must not reassign, and
        # before v9 it can only be told so by not being named leader.
        leader_id, members = result.previous_leader_id, ()
    protocol_name = result.protocol_name
    if protocol_name is None and version < 7:
        protocol_name = ""
    return {
        "throttle_time_ms": 0,
        "error_code": result.error,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": protocol_name,
        "leader": leader_id,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "metadata": metadata}
            for member_id, instance_id, metadata in members
        ],
    }


@handles(ApiKey.SYNC_GROUP)
async def sync_group(request):
    body = request.body
    assignments = {a["member_id"]: a["assignment"] for a in body["assignments"]}
    try:
        result = await request.broker.groups.sync_group(
            body["group_id"], body["member_id"], body.get("group_instance_id"), body["generation_id"],
            body.get("protocol_type"), body.get("protocol_name"), assignments,
        )
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "assignment": b""}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }


@handles(ApiKey.HEARTBEAT)
async def heartbeat(request):
    body = request.body
    try:
        await request.broker.groups.heartbeat(
            body["group_id"], body["member_id"], body.get("group_instance_id"), body["generation_id"]
        )
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE}


@handles(ApiKey.LEAVE_GROUP)
async def leave_group(request):
    body, version = request.body, request.api_version
    if version < 3:
        leaving = [(body["member_id"], None)]
    else:
        leaving = [(m["member_id"], m["group_instance_id"]) for m in body["members"]]
    try:
        errors = await request.broker.groups.leave_group(body["group_id"], leaving)
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "members": []}
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


@handles(ApiKey.DESCRIBE_GROUPS)
async def describe_groups(request):
    body, version = request.body, request.api_version
    operations = GROUP_OPERATIONS if body.get("include_authorized_operations") else OPERATIONS_NOT_REQUESTED
    return {
        "throttle_time_ms": 0,
        "groups": [await _describe(request.broker, group_id, version, operations) for group_id in body["groups"]],
    }


async def _describe(broker, group_id, version, operations):
    try:
        summary = await broker.groups.describe_group(group_id)
    except KafkaError as e:
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


@handles(ApiKey.LIST_GROUPS)
async def list_groups(request):
    body = request.body
    states = {s.lower() for s in body.get("states_filter", ())}
    types = {t.lower() for t in body.get("types_filter", ())}
    if types and GROUP_TYPE not in types:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": []}
    try:
        summaries = await request.broker.groups.list_groups()
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "groups": []}
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


@handles(ApiKey.DELETE_GROUPS)
async def delete_groups(request):
    results = []
    for group_id in request.body["groups_names"]:
        try:
            await request.broker.groups.delete_group(group_id)
        except KafkaError as e:
            results.append({"group_id": group_id, "error_code": e.code})
        else:
            results.append({"group_id": group_id, "error_code": ErrorCode.NONE})
    return {"throttle_time_ms": 0, "results": results}
