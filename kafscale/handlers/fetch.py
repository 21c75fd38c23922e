"""Fetch, v4-18: committed batches only, long-polling across every
partition of the request at once until min_bytes or max_wait_ms.

Versions: v4 (the oldest spoken) adds the isolation level and record batch
v2; v5 the log start offset; v7 fetch sessions (KIP-227); v9 the current
leader epoch, checked for fencing; v12 is the first flexible version; v13
names topics by id (UNKNOWN_TOPIC_ID for one we do not know); v15 moves the
replica id into ReplicaState and v17 adds directory ids, which concern
followers only; v18 adds the high watermark of KIP-1166, unused here.

Departures from Kafka: no fetch sessions are handed out (session id 0
always, FETCH_SESSION_ID_NOT_FOUND for any other); no preferred read
replica; read_committed and read_uncommitted see the same records, since
there are no transactions and nothing above the high watermark is ever
readable. A partition whose object store read fails answers
KAFKA_STORAGE_ERROR.
"""

from twisted.internet.defer import Deferred

from kafscale.handlers.common import PartitionLayout, answer_partitions, known_topic
from kafscale.protocol.errors import ErrorCode, KafkaError

READ_COMMITTED = 1
LAYOUT = PartitionLayout(topic="topic", index="partition")


def answer_bytes(body):
    """What the answer may take, for the connection's output bound: at
    least one batch is answered even with max_bytes 0."""
    return max(body["max_bytes"], 1)


async def handle(request):
    broker = request.broker
    body = request.body
    if body.get("session_id", 0) != 0:
        # This broker never hands out fetch sessions (v7+), so none can be named.
        return {"error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND, "session_id": 0, "responses": []}
    deadline = broker.reactor.seconds() + body["max_wait_ms"] / 1000
    _prefetch(broker, body["topics"])
    while True:
        responses, size, logs = await _read(request)
        remaining = deadline - broker.reactor.seconds()
        if size >= body["min_bytes"] or logs is None or remaining <= 0:
            return {"error_code": ErrorCode.NONE, "session_id": 0, "responses": responses}
        await _next_commit(logs, remaining, broker.reactor)


def _topic_name(broker, topic):
    """A fetch names topics by name up to v12, by id from v13."""
    if "topic" in topic:
        return topic["topic"]
    return known_topic(broker, None, topic["topic_id"]).name


async def _read(request):
    """Read every partition once: (topic responses, bytes, the logs read),
    the logs being None when some partition had an error to report at once."""
    broker, body = request.broker, request.body
    budget = body["max_bytes"]
    size = 0
    logs = []
    blank = {
        "high_watermark": -1,
        "last_stable_offset": -1,
        "log_start_offset": -1,
        "aborted_transactions": [] if body["isolation_level"] == READ_COMMITTED else None,
        "preferred_read_replica": -1,
        "records": b"",  # Kafka sends empty, not null, records with an error
    }

    async def read(partition_log, wanted, answer):
        nonlocal budget, size
        logs.append(partition_log)
        partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
        answer["high_watermark"] = answer["last_stable_offset"] = partition_log.high_watermark
        answer["log_start_offset"] = partition_log.log_start_offset
        limit = min(wanted["partition_max_bytes"], budget)
        records = await partition_log.read(wanted["fetch_offset"], limit, min_one=size == 0)
        answer["records"] = records
        size += len(records)
        budget = max(budget - len(records), 0)

    responses = await answer_partitions(request, body["topics"], LAYOUT, blank, read,
                                        name_of=lambda topic: _topic_name(broker, topic))
    failed = any(p["error_code"] != ErrorCode.NONE for topic in responses for p in topic["partitions"])
    return responses, size, None if failed else logs


def _prefetch(broker, topics):
    for topic in topics:
        try:
            name = _topic_name(broker, topic)
        except KafkaError:
            continue
        for wanted in topic["partitions"]:
            partition_log = broker.logs.get((name, wanted["partition"]))
            if partition_log is not None:
                partition_log.prefetch(wanted["fetch_offset"])


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
