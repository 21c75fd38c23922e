"""CreateTopics, v2-7: create topics in the metadata store; the broker
takes up their partitions before it answers, so a client may produce at
once.

Versions: v2 is the oldest spoken (validate_only came in v1); v4 lets the
partition count and replication factor be -1, the broker's defaults
(KIP-464); v5 is the first flexible version and returns the topic's configs
and id (KIP-525); v6-7 may be throttled in Kafka (KIP-599), never here.

A principal without DESCRIBE_CONFIGS on the topic gets neither its configs
nor its partition count and replication factor, only
topic_config_error_code TOPIC_AUTHORIZATION_FAILED, as from Kafka.

Departures from Kafka: the object store replicates, so any replication
factor is accepted whatever the number of live brokers (Kafka Connect,
Schema Registry and Strimzi ask for 3), kept and reported back. A replica
assignment is checked as Kafka checks it (live brokers, one list per
partition, as long as each other) and gives the partition count and
replication factor, but does not place partitions: their owners are the
brokers' assignment. Every rule of a topic is checked in one place,
kafscale.topics.Topics.create.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import NO_TOPIC_ID
from kafscale.handlers.config_resources import ConfigSource
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.handlers.validation import check_named_once, named_more_than_once, replica_lists
from kafscale.metadata import topic_configs
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.topics import DEFAULT_REPLICATION_FACTOR


async def handle(request):
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
    live_brokers = frozenset(broker.node_id for broker in request.view.live_brokers())
    results = []
    for topic in body["topics"]:
        name = topic["name"]
        result = {"name": name, "topic_id": NO_TOPIC_ID, "error_code": ErrorCode.NONE, "error_message": None,
                  "num_partitions": -1, "replication_factor": -1, "configs": None}
        results.append(result)
        configs = {c["name"]: c["value"] for c in topic["configs"]}
        try:
            if not authorization.may_create_topic(request, name):
                raise authorization.refusal(Operation.CREATE, ResourceType.TOPIC, name)
            check_named_once("topic", name, repeated)
            assignments = replica_lists(topic["assignments"], first_index=0)
            info = await request.topics.create(
                name, topic["num_partitions"], configs, replication_factor=topic["replication_factor"],
                assignments=assignments, live_brokers=live_brokers, validate_only=body["validate_only"])
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"] = e.code
            result["error_message"] = e.message
            continue
        if info is not None:
            result["topic_id"] = info.topic_id
        if not authorization.allowed(request, Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, name):
            # Created, but what it was created with is not the principal's to see (KIP-525).
            result["topic_config_error_code"] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            continue
        if info is None:
            partitions, factor = _validated_shape(request, topic)
        else:
            partitions, factor = info.partitions, info.replication_factor
        result["num_partitions"], result["replication_factor"] = partitions, factor
        result["configs"] = [
            {"name": key.name, "value": configs.get(key.name, key.default), "read_only": False,
             "config_source": (ConfigSource.DYNAMIC_TOPIC_CONFIG if key.name in configs
                               else ConfigSource.DEFAULT_CONFIG),
             "is_sensitive": False}
            for key in topic_configs.described(configs)
        ]
    return {"throttle_time_ms": 0, "topics": results}


def _validated_shape(request, topic):
    """What a topic validated but not created would have: partitions and
    replication factor."""
    if topic["assignments"]:
        return len(topic["assignments"]), len(topic["assignments"][0]["broker_ids"])
    partitions = topic["num_partitions"]
    factor = topic["replication_factor"]
    return (request.topics.default_partitions if partitions == -1 else partitions,
            DEFAULT_REPLICATION_FACTOR if factor == -1 else factor)
