"""Fetch: committed batches only, long-polling across every partition of the
request at once until min_bytes or max_wait_ms."""

import uuid

from twisted.internet.defer import Deferred

from kafscale.handlers import STORAGE_ERRORS, handles
from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

log = logger("kafscale.handlers.fetch")

READ_COMMITTED = 1


@handles(ApiKey.FETCH)
async def fetch(request):
    broker = request.broker
    body = request.body
    if body.get("session_id", 0) != 0:
        # This broker never hands out fetch sessions (v7+), so none can be named.
        return {"error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND, "session_id": 0, "responses": []}
    wanted = [(_topic_name(broker, topic), topic, partition)
              for topic in body["topics"] for partition in topic["partitions"]]
    deadline = broker.reactor.seconds() + body["max_wait_ms"] / 1000
    _prefetch(broker, wanted)
    while True:
        responses, size, logs = await _read(broker, body, wanted)
        remaining = deadline - broker.reactor.seconds()
        if size >= body["min_bytes"] or logs is None or remaining <= 0:
            return {"error_code": ErrorCode.NONE, "session_id": 0, "responses": responses}
        await _next_commit(logs, remaining, broker.reactor)


def _topic_name(broker, topic):
    if "topic" in topic:
        return topic["topic"]
    info = broker.topic_by_id(topic["topic_id"])
    return None if info is None else info.name


async def _read(broker, body, wanted):
    """Read every partition once: (topic responses, bytes, the logs read),
    the logs being None when some partition had an error to report at once."""
    budget = body["max_bytes"]
    read_committed = body["isolation_level"] == READ_COMMITTED
    responses = []
    by_topic = {}
    size = 0
    logs = []
    errors = False
    for name, topic, request in wanted:
        key = id(topic)
        response = by_topic.get(key)
        if response is None:
            response = by_topic[key] = {"topic": name, "topic_id": topic.get("topic_id", uuid.UUID(int=0)),
                                        "partitions": []}
            responses.append(response)
        partition = {
            "partition_index": request["partition"],
            "error_code": ErrorCode.NONE,
            "high_watermark": -1,
            "last_stable_offset": -1,
            "log_start_offset": -1,
            "aborted_transactions": [] if read_committed else None,
            "preferred_read_replica": -1,
            "records": b"",  # Kafka sends empty, not null, records with an error
        }
        response["partitions"].append(partition)
        try:
            if name is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
            partition_log = broker.log_for(name, request["partition"])
            logs.append(partition_log)
            partition_log.check_leader_epoch(request.get("current_leader_epoch", -1))
            partition["high_watermark"] = partition["last_stable_offset"] = partition_log.high_watermark
            partition["log_start_offset"] = partition_log.log_start_offset
            limit = min(request["partition_max_bytes"], budget)
            records = await partition_log.read(request["fetch_offset"], limit, min_one=size == 0)
        except KafkaError as e:
            partition["error_code"] = e.code
            errors = True
            continue
        except STORAGE_ERRORS as e:
            log.warn("fetch of {topic}-{partition} failed: {error}", topic=name,
                     partition=request["partition"], error=e)
            partition["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
            errors = True
            continue
        partition["records"] = records
        size += len(records)
        budget = max(budget - len(records), 0)
    return responses, size, None if errors else logs


def _prefetch(broker, wanted):
    for name, _, request in wanted:
        partition_log = broker.logs.get((name, request["partition"]))
        if partition_log is not None:
            partition_log.prefetch(request["fetch_offset"])


def _next_commit(logs, timeout, reactor):
    """A Deferred firing when any of ``logs`` commits, or after ``timeout``."""
    woken = Deferred()

    def wake():
        if not woken.called:
            woken.callback(None)

    timer = reactor.callLater(timeout, wake)
    for partition_log in logs:
        partition_log.add_listener(wake)

    def done(result):
        if timer.active():
            timer.cancel()
        for partition_log in logs:
            partition_log.remove_listener(wake)
        return result

    return woken.addBoth(done)
