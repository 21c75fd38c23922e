"""Metadata: the live brokers, and each partition's owner as its leader."""

import uuid

from kafscale.handlers import handles
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

# What Kafka sends when authorized operations were not asked for; kafka-python
# chokes on -1 (NOTES.md).
OPERATIONS_NOT_REQUESTED = -(2**31)
NO_TOPIC_ID = uuid.UUID(int=0)


@handles(ApiKey.METADATA)
async def metadata(request):
    broker = request.broker
    body = request.body
    wanted = body["topics"]
    if request.api_version == 0 and not wanted:
        wanted = None  # v0: an empty list means every topic
    may_create = body.get("allow_auto_topic_creation", True)

    if wanted is None:
        topics = [_topic(broker, info) for info in sorted(broker.topics.values(), key=lambda t: t.name)]
    else:
        topics = [await _requested_topic(broker, entry, may_create) for entry in wanted]

    return {
        "throttle_time_ms": 0,
        "brokers": [
            {"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
            for b in broker.live_brokers()
        ],
        "cluster_id": broker.cluster_id,
        "controller_id": broker.controller_id(),
        "topics": topics,
        "cluster_authorized_operations": OPERATIONS_NOT_REQUESTED,
        "error_code": ErrorCode.NONE,
    }


async def _requested_topic(broker, entry, may_create):
    name, topic_id = entry["name"], entry.get("topic_id", NO_TOPIC_ID)
    if name is None:
        info = broker.topic_by_id(topic_id)
        if info is None:
            return _topic_error(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id)
        return _topic(broker, info)
    info = broker.topics.get(name)
    if info is None and may_create and broker.config.auto_create_topics:
        try:
            info = await broker.auto_create_topic(name)
        except KafkaError as e:
            return _topic_error(e.code, name)
    if info is None:
        return _topic_error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
    return _topic(broker, info)


def _topic(broker, info):
    partitions = []
    for index in range(info.partitions):
        leader_id, leader_epoch = broker.leader_of(info.name, index)
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
        "topic_authorized_operations": OPERATIONS_NOT_REQUESTED,
    }


def _topic_error(code, name, topic_id=NO_TOPIC_ID):
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": OPERATIONS_NOT_REQUESTED,
    }
