"""CreateTopics, v2-7: create topics in the metadata store; the broker
takes up their partitions before it answers, so a client may produce at
once.

Versions: v2 is the oldest spoken (validate_only came in v1); v4 lets the
partition count and replication factor be -1, the broker's defaults
(KIP-464); v5 is the first flexible version and returns the topic's configs
and id (KIP-525); v6-7 may be throttled in Kafka (KIP-599), never here.

Departures from Kafka: the object store replicates, so the replication
factor is 1 (or -1), and partitions are placed by the brokers' assignment,
so explicit replica assignments are refused with INVALID_REPLICA_ASSIGNMENT.
Every rule of a topic is checked in one place, kafscale.topics.Topics.create.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import NO_TOPIC_ID
from kafscale.handlers.config_resources import ConfigSource
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.handlers.validation import check_named_once, named_more_than_once
from kafscale.metadata.topic_configs import TOPIC_CONFIGS
from kafscale.protocol.errors import ErrorCode
from kafscale.security.acls import Operation, ResourceType


async def handle(request):
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
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
            info = await request.topics.create(
                name, topic["num_partitions"], configs, replication_factor=topic["replication_factor"],
                assigned=bool(topic["assignments"]), validate_only=body["validate_only"])
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"] = e.code
            result["error_message"] = e.message
            continue
        partitions = topic["num_partitions"] if info is None else info.partitions
        result["num_partitions"] = request.config.num_partitions if partitions == -1 else partitions
        result["replication_factor"] = 1
        if info is not None:
            result["topic_id"] = info.topic_id
        result["configs"] = [
            {"name": key.name, "value": configs.get(key.name, key.default), "read_only": False,
             "config_source": (ConfigSource.DYNAMIC_TOPIC_CONFIG if key.name in configs
                               else ConfigSource.DEFAULT_CONFIG),
             "is_sensitive": False}
            for key in TOPIC_CONFIGS.values()
        ]
    return {"throttle_time_ms": 0, "topics": results}
