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
replica. read_committed reads stop at the last stable offset and carry the
aborted transactions of the range (kafscale.storage.transactions). A partition whose object store read fails answers
KAFKA_STORAGE_ERROR. The broker caps what one fetch answers
(``fetch_max_bytes``, Kafka's fetch.max.bytes) and how long it waits
(``fetch_max_wait_ms``) whatever the request asks; a parked fetch re-reads
only the partitions that committed, and ends when its connection closes.
"""

from twisted.internet.defer import Deferred

from kafscale.handlers.common import PartitionLayout, answer_partitions, known_topic, log
from kafscale.handlers.errors import REFUSALS, STORAGE_ERRORS, kafka_error
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import Operation

READ_COMMITTED = 1
LAYOUT = PartitionLayout(topic="topic", index="partition")


def answer_bytes(body):
    """What the answer may take, for the connection's output bound: at
    least one batch is answered even with max_bytes 0."""
    return max(body["max_bytes"], 1)


async def handle(request):
    body = request.body
    if body.get("session_id", 0) != 0:
        # This broker never hands out fetch sessions (v7+), so none can be named.
        return {"error_code": ErrorCode.FETCH_SESSION_ID_NOT_FOUND, "session_id": 0, "responses": []}
    config = request.config
    reading = _Reading(min(body["max_bytes"], config.fetch_max_bytes), body["isolation_level"] == READ_COMMITTED)
    deadline = request.clock.seconds() + min(body["max_wait_ms"], config.fetch_max_wait_ms) / 1000
    _prefetch(request, body["topics"], reading.max_bytes)
    blank = {
        "high_watermark": -1,
        "last_stable_offset": -1,
        "log_start_offset": -1,
        "aborted_transactions": [] if body["isolation_level"] == READ_COMMITTED else None,
        "preferred_read_replica": -1,
        "records": b"",  # Kafka sends empty, not null, records with an error
    }
    responses = await answer_partitions(request, body["topics"], LAYOUT, blank, reading.read,
                                        name_of=lambda topic: _topic_name(request.topics, topic),
                                        operation=Operation.READ)
    failed = any(p["error_code"] != ErrorCode.NONE for topic in responses for p in topic["partitions"])
    if failed or reading.size >= body["min_bytes"]:
        return _response(responses)
    commits = _Commits(reading.parts, request.clock)
    try:
        while reading.size < body["min_bytes"]:
            remaining = deadline - request.clock.seconds()
            if remaining <= 0:
                break
            for index in await commits.next(remaining):
                if not await reading.read_again(reading.parts[index]):
                    return _response(responses)
    finally:
        commits.close()
    return _response(responses)


def _response(responses):
    return {"error_code": ErrorCode.NONE, "session_id": 0, "responses": responses}


def _topic_name(topics, topic):
    """A fetch names topics by name up to v12, by id from v13."""
    if "topic" in topic:
        return topic["topic"]
    return known_topic(topics, None, topic["topic_id"]).name


class _Reading:
    """The answer under way: every partition read once, then again as it
    commits, within one byte budget."""

    def __init__(self, max_bytes, committed):
        self.max_bytes = max_bytes
        self.committed = committed
        """read_committed: only below the last stable offset, with the
        aborted transactions the records hold."""
        self.size = 0
        # (partition log, request entry, answer) of each partition read
        self.parts = []

    async def read(self, partition_log, wanted, answer):
        partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
        self.parts.append((partition_log, wanted, answer))
        await self._read(partition_log, wanted, answer)

    async def read_again(self, part):
        """Read a partition that committed again; -> False once it has an
        error to answer at once."""
        partition_log, wanted, answer = part
        self.size -= len(answer["records"])
        answer["records"] = b""
        try:
            await self._read(partition_log, wanted, answer)
        except REFUSALS as e:
            if isinstance(e, STORAGE_ERRORS):
                log.warn("fetch of {topic}-{partition} failed: {error}", topic=partition_log.topic,
                         partition=partition_log.partition, error=e)
            answer["error_code"] = kafka_error(e).code
            return False
        return True

    async def _read(self, partition_log, wanted, answer):
        answer["high_watermark"] = partition_log.high_watermark
        stable = answer["last_stable_offset"] = partition_log.last_stable_offset
        answer["log_start_offset"] = partition_log.log_start_offset
        limit = max(min(wanted["partition_max_bytes"], self.max_bytes - self.size), 0)
        offset = wanted["fetch_offset"]
        if self.committed:
            records = await partition_log.read(offset, limit, min_one=self.size == 0, max_offset=stable)
            aborted = partition_log.aborted_transactions(offset, stable - 1) if len(records) else []
            answer["aborted_transactions"] = [{"producer_id": producer_id, "first_offset": first}
                                              for producer_id, first in aborted]
        else:
            records = await partition_log.read(offset, limit, min_one=self.size == 0)
        answer["records"] = records
        self.size += len(records)


def _prefetch(request, topics, budget):
    """Start loading the segments the first read will want, as far as the
    byte budget goes, so that their GETs overlap."""
    for topic in topics:
        try:
            name = _topic_name(request.topics, topic)
        except KafkaError:
            continue
        for wanted in topic["partitions"]:
            if budget <= 0:
                return
            partition_log = request.logs.get((name, wanted["partition"]))
            if partition_log is not None:
                loading = partition_log.prefetch(wanted["fetch_offset"])
                if loading:
                    budget -= max(min(wanted["partition_max_bytes"], loading), 1)


class _Commits:
    """Which of a parked fetch's partitions committed since it last looked:
    one listener per partition for the whole wait."""

    def __init__(self, parts, reactor):
        self.reactor = reactor
        self.committed = set()
        self.woken = None
        self.listening = []
        for index, (partition_log, _, _) in enumerate(parts):
            listener = self._listener(index)
            partition_log.add_listener(listener)
            self.listening.append((partition_log, listener))

    def _listener(self, index):
        def committed():
            self.committed.add(index)
            if self.woken is not None and not self.woken.called:
                self.woken.callback(None)
        return committed

    async def next(self, timeout):
        """The indices of the partitions that committed, in request order,
        once one has or after ``timeout`` seconds (then possibly none)."""
        if not self.committed:
            self.woken = Deferred()
            timer = self.reactor.callLater(timeout, self.woken.callback, None)
            try:
                await self.woken
            finally:
                self.woken = None
                if timer.active():
                    timer.cancel()
        committed, self.committed = sorted(self.committed), set()
        return committed

    def close(self):
        for partition_log, listener in self.listening:
            partition_log.remove_listener(listener)
        self.listening = []
