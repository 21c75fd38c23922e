"""Metadata, v0-13: the live brokers, and each partition's owner as its
only replica and leader.

Versions: in v0 an empty topic list means every topic, from v1 a null one
does; v4 lets the client forbid auto-creation; v8 asks for authorized
operations (the cluster's until v10); v10 adds
topic ids and v12 lets a topic be named by id alone (UNKNOWN_TOPIC_ID for
one we do not know); v13 adds a top-level error code, always NONE.

Authorization: only the topics the principal may DESCRIBE are listed; one
asked for by name or id that it may not answers TOPIC_AUTHORIZATION_FAILED,
as does one that does not exist where auto-creation would need a CREATE
the principal lacks.

Departures from Kafka: a partition that no live broker owns right now (its
owner died, or a handover is under way) answers LEADER_NOT_AVAILABLE with
leader -1, and clients retry. The controller is the lowest live node id.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import NO_TOPIC_ID, OPERATIONS_NOT_REQUESTED, endpoint, known_or_created_topic
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType


async def handle(request):
    body = request.body
    wanted = body["topics"]
    if request.api_version == 0 and not wanted:
        wanted = None  # v0: an empty list means every topic
    may_create = body.get("allow_auto_topic_creation", True)
    with_operations = body.get("include_topic_authorized_operations", False)

    if wanted is None:
        topics = [_topic(request, info, with_operations)
                  for info in sorted(request.topics.values(), key=lambda t: t.name)
                  if authorization.allowed(request, Operation.DESCRIBE, ResourceType.TOPIC, info.name)]
    else:
        topics = [await _requested_topic(request, entry, may_create, with_operations) for entry in wanted]
    cluster_operations = OPERATIONS_NOT_REQUESTED
    if body.get("include_cluster_authorized_operations", False):
        cluster_operations = authorization.operations(request, ResourceType.CLUSTER)

    return {
        "throttle_time_ms": 0,
        "brokers": [
            {"node_id": b.node_id, **endpoint(b, request.listener), "rack": b.rack}
            for b in request.view.live_brokers()
        ],
        "cluster_id": request.config.cluster_id,
        "controller_id": request.view.controller_id(),
        "topics": topics,
        "cluster_authorized_operations": cluster_operations,
        "error_code": ErrorCode.NONE,
    }


async def _requested_topic(request, entry, may_create, with_operations):
    name, topic_id = entry["name"], entry.get("topic_id", NO_TOPIC_ID)
    try:
        info = await known_or_created_topic(request, Operation.DESCRIBE, name, topic_id, may_create)
    except REFUSALS as e:
        # A topic asked for by name is answered without its id.
        return _topic_error(kafka_error(e).code, name, topic_id if name is None else NO_TOPIC_ID)
    return _topic(request, info, with_operations)


def _topic(request, info, with_operations):
    logs = request.logs
    partitions = []
    for index in range(info.partitions):
        leader_id, leader_epoch = logs.leader_of(info.name, index)
        replicas = [] if leader_id < 0 else [leader_id]
        partitions.append({
            "error_code": ErrorCode.NONE if leader_id >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
            "partition_index": index,
            "leader_id": leader_id,
            "leader_epoch": leader_epoch,
            "replica_nodes": replicas,
            "isr_nodes": replicas,
            "offline_replicas": [],
        })
    return {
        "error_code": ErrorCode.NONE,
        "name": info.name,
        "topic_id": info.topic_id,
        "is_internal": False,
        "partitions": partitions,
        "topic_authorized_operations": (authorization.operations(request, ResourceType.TOPIC, info.name)
                                        if with_operations else OPERATIONS_NOT_REQUESTED),
    }


def _topic_error(code, name, topic_id):
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": OPERATIONS_NOT_REQUESTED,
    }
