"""CreateTopics and DeleteTopics."""

import uuid

from kafscale.handlers import handles, named_more_than_once
from kafscale.metadata.topic_configs import TOPIC_CONFIGS
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

NO_TOPIC_ID = uuid.UUID(int=0)
# DescribeConfigs' ConfigSource values
TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5


@handles(ApiKey.CREATE_TOPICS)
async def create_topics(request):
    broker = request.broker
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
            if name in repeated:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"topic {name!r} is named more than once")
            if topic["replication_factor"] not in (-1, 1):
                raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                                 "the object store replicates: the replication factor is 1")
            if topic["assignments"]:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 "partitions are placed by the brokers, not by assignment")
            info = await broker.create_topic(name, topic["num_partitions"], configs, body["validate_only"])
        except KafkaError as e:
            result["error_code"] = e.code
            result["error_message"] = e.message
            continue
        partitions = topic["num_partitions"] if info is None else info.partitions
        result["num_partitions"] = broker.config.num_partitions if partitions == -1 else partitions
        result["replication_factor"] = 1
        if info is not None:
            result["topic_id"] = info.topic_id
        result["configs"] = [
            {"name": key.name, "value": configs.get(key.name, key.default), "read_only": False,
             "config_source": TOPIC_CONFIG if key.name in configs else DEFAULT_CONFIG, "is_sensitive": False}
            for key in TOPIC_CONFIGS.values()
        ]
    return {"throttle_time_ms": 0, "topics": results}


@handles(ApiKey.DELETE_TOPICS)
async def delete_topics(request):
    broker = request.broker
    body = request.body
    if request.api_version < 6:
        wanted = [(name, NO_TOPIC_ID) for name in body["topic_names"]]
    else:
        wanted = [(t["name"], t["topic_id"]) for t in body["topics"]]
    results = []
    for name, topic_id in wanted:
        result = {"name": name, "topic_id": topic_id, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        try:
            if name is None:
                info = broker.topic_by_id(topic_id)
                if info is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, f"no topic with id {topic_id}")
                result["name"] = name = info.name
            info = await broker.delete_topic(name)
            result["topic_id"] = info.topic_id
        except KafkaError as e:
            result["error_code"] = e.code
            result["error_message"] = e.message
    return {"throttle_time_ms": 0, "responses": results}
