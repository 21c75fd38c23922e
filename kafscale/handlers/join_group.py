"""JoinGroup, v0-9: a member joins a consumer group (or rejoins it), and
waits until every member has joined or the rebalance timeout has passed;
the coordinator then answers each with the new generation, and the leader
also with every member's subscription metadata.

Versions: v1 adds the rebalance timeout (v0 uses the session timeout for
both); v4 makes a new member join twice, first to be given its id
(MEMBER_ID_REQUIRED, KIP-394); v5 adds static membership by group instance
id (KIP-345); v6 is the first flexible version; v7 names the protocol type
and name in the answer (null before is answered as ""); v8 adds a reason,
which we ignore; v9 tells a static leader rejoining a stable group to skip
the assignment (KIP-814), where older versions name it a follower instead.

Departures from Kafka: only the classic protocol is spoken (no KIP-848
ConsumerGroupHeartbeat). A member's host is the address its connection
comes from, in Java's "/host" form.
"""

from kafscale.coordinator.errors import MemberIdRequired
from kafscale.coordinator.group import JoinRequest, JoinResult
from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


def _client_host(request):
    # Kafka shows a member's host as Java prints an InetAddress.
    return "/" + request.client_host


async def handle(request):
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
    error = ErrorCode.NONE
    try:
        authorization.check_group(request, Operation.READ, body["group_id"])
        result = await request.groups.join_group(body["group_id"], join)
    except REFUSALS as e:
        # A new member (v4+) is told its id along with MEMBER_ID_REQUIRED.
        error = kafka_error(e).code
        result = JoinResult(e.member_id if isinstance(e, MemberIdRequired) else join.member_id)
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
        "error_code": error,
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
