"""CreatePartitions: topics grow, never shrink; the broker claims the new
partitions as soon as the metadata store has them."""

from kafscale.handlers import handles, named_more_than_once
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey


@handles(ApiKey.CREATE_PARTITIONS)
async def create_partitions(request):
    broker = request.broker
    body = request.body
    repeated = named_more_than_once(t["name"] for t in body["topics"])
    results = []
    for topic in body["topics"]:
        name, count = topic["name"], topic["count"]
        result = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        try:
            if name in repeated:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"topic {name!r} is named more than once")
            info = broker.topics.get(name)
            if info is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {name!r}")
            if topic["assignments"]:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 "partitions are placed by the brokers, not by assignment")
            if count <= info.partitions:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                 f"topic {name!r} has {info.partitions} partitions: it can grow, not go to {count}")
            if body["validate_only"]:
                continue
            await broker.add_partitions(name, count)
        except KafkaError as e:
            result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
