"""Produce: validate each partition's batch, append it to the partition's
log, and answer once the flush that carries it is committed."""

from twisted.internet.defer import DeferredList

from kafscale.handlers import handles
from kafscale.metadata import topic_configs
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import InvalidRecords, iter_batches


@handles(ApiKey.PRODUCE)
async def produce(request):
    broker = request.broker
    body = request.body
    transactional = body["transactional_id"] is not None
    responses = []
    appends = []
    for topic in body["topic_data"]:
        name, info, topic_error = await _resolve_topic(broker, topic)
        partitions = []
        for data in topic["partition_data"]:
            response = {"index": data["index"], "error_code": ErrorCode.NONE, "base_offset": -1,
                        "log_start_offset": -1, "error_message": None}
            partitions.append(response)
            try:
                if topic_error is not None:
                    raise topic_error
                if transactional:
                    raise KafkaError(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                     "transactions are not supported")
                partition_log = broker.log_for(name, data["index"])
                records = data["records"]
                batches = _validated(records, info)
                appends.append((response, partition_log, partition_log.append(records, batches)))
            except KafkaError as e:
                response["error_code"] = e.code
                response["error_message"] = e.message
        responses.append({"name": name, "topic_id": topic.get("topic_id"), "partition_responses": partitions})

    if body["acks"] == 0:
        # The producer reads no answer; the batches still reach the store.
        for _, _, committed in appends:
            committed.addErrback(lambda failure: None)
        return None

    results = await DeferredList([committed for _, _, committed in appends], consumeErrors=True)
    for (response, partition_log, _), (ok, value) in zip(appends, results):
        if ok:
            response["base_offset"] = value
            response["log_start_offset"] = partition_log.log_start_offset
        else:
            error = value.value
            response["error_code"] = getattr(error, "code", ErrorCode.UNKNOWN_SERVER_ERROR)
            response["error_message"] = getattr(error, "message", None)
    return {"responses": responses, "throttle_time_ms": 0}


async def _resolve_topic(broker, topic):
    """(name, TopicInfo or None, KafkaError or None) for a topic entry,
    named (v0-12) or by topic id (v13+), auto-creating where allowed."""
    if "name" not in topic:
        info = broker.topic_by_id(topic["topic_id"])
        if info is None:
            return None, None, KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
        return info.name, info, None
    name = topic["name"]
    info = broker.topics.get(name)
    if info is None and broker.config.auto_create_topics:
        try:
            info = await broker.auto_create_topic(name)
        except KafkaError as e:
            return name, None, e
    if info is None:
        return name, None, KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return name, info, None


def _validated(records, info):
    """The batches of a partition's records, checked as Kafka checks them."""
    if records is None or len(records) == 0:
        raise KafkaError(ErrorCode.INVALID_RECORD, "no record batch")
    try:
        batches = list(iter_batches(records))
    except InvalidRecords as e:
        raise KafkaError(e.code, e.message) from None
    if len(batches) != 1:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"{len(batches)} batches: Produce v3+ carries exactly one")
    batch = batches[0]
    limit = topic_configs.effective_int(info.configs, "max.message.bytes")
    if batch.size > limit:
        raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"batch of {batch.size} bytes exceeds max.message.bytes {limit}")
    if batch.is_control:
        raise KafkaError(ErrorCode.INVALID_RECORD, "clients may not write control batches")
    if batch.is_transactional:
        raise KafkaError(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported")
    return batches
