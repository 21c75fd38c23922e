"""Produce, v3-13: validate each partition's batch, append it to the
partition's log, and answer once the flush that carries it is committed
(acks=0: the batches are appended and nothing is answered).

Versions: v3 (the oldest spoken) brings record batch v2 and the
transactional id; v8 adds error messages to the answer (KIP-467); v9 is the
first flexible version; v13 names topics by id (UNKNOWN_TOPIC_ID for one we
do not know). Idempotent producers' sequences are checked per partition
(:mod:`kafscale.storage.producer_state`).

Transactional batches are admitted once the producer's transaction
coordinator confirms that its ongoing transaction holds the partition
(KIP-890 part 1); a broker run without transactions refuses them with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

As in Kafka, a topic with ``message.timestamp.type=LogAppendTime`` has its
batches stamped with the time of their append (returned as
log_append_time_ms), and one with a ``compression.type`` other than
``producer`` has them recompressed (:mod:`kafscale.rewriter`); with
CreateTime, a batch whose timestamps lie further from the broker's clock
than ``message.timestamp.before.max.ms`` / ``after.max.ms`` allow is
refused with INVALID_TIMESTAMP (judged by the batch's first and largest
timestamps: records are not decoded one by one).

Departures from Kafka: acks=1 and acks=all mean the same, a commit to the
object and metadata stores. Per-record errors are not reported: a refused
batch is refused whole.
"""

from twisted.internet.defer import DeferredList, DeferredSemaphore
from twisted.internet.threads import deferToThread

from kafscale.handlers import authorization
from kafscale.handlers.common import PartitionLayout, answer_partitions, known_or_created_topic
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.metadata import topic_configs
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.batches import keyless_record
from kafscale.protocol.records import InvalidRecords, iter_batches
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.rewriter import rewrite_for

# Batches for compacted topics have their keys checked in a thread, one at a
# time in arrival order, so that a partition's appends keep their order.
_KEY_CHECKS = DeferredSemaphore(1)

LAYOUT = PartitionLayout(partitions="partition_data", index="index",
                         answered_partitions="partition_responses", answered_index="index")


async def handle(request):
    body = request.body
    transactional_id = body["transactional_id"]
    transactional = transactional_id is not None
    # Each topic entry's TopicInfo (auto-created where allowed), or the
    # KafkaError refusing the topic.
    resolved = {}
    for topic in body["topic_data"]:
        try:
            resolved[id(topic)] = await known_or_created_topic(request, Operation.WRITE, topic.get("name"),
                                                               topic.get("topic_id"))
        except REFUSALS as e:
            resolved[id(topic)] = kafka_error(e)
    infos = {info.name: info for info in resolved.values() if not isinstance(info, KafkaError)}

    def name_of(topic):
        info = resolved[id(topic)]
        if isinstance(info, KafkaError):
            raise info
        if transactional:
            authorization.check(request, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)
        if transactional and request.transactions is None:
            raise KafkaError(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are off on this broker")
        return info.name

    appends = []

    async def append(partition_log, wanted, answer):
        records = wanted["records"]
        configs = request.broker_configs.over_defaults(infos[partition_log.topic].configs)
        now_ms = int(request.clock.seconds() * 1000)
        batches = _validated(records, configs, now_ms)
        if "compact" in topic_configs.cleanup_policies(configs):
            await _check_keys(records, batches[0])
        if batches[0].is_transactional:
            if not transactional:
                raise KafkaError(ErrorCode.INVALID_RECORD, "a transactional batch without a transactional id")
            await _verify(request, body["transactional_id"], partition_log, batches[0])
        rewrite = rewrite_for(configs, now_ms)
        if rewrite is not None:
            records = await request.rewriter.rewrite(records, batches[0], rewrite)
            batches = list(iter_batches(records, verify_crc=False))
            if rewrite.log_append_time is not None:
                answer["log_append_time_ms"] = rewrite.log_append_time
        # A failed flush closes the connection: the requests the producer
        # sent after the failed one would otherwise overtake its retry.
        committed = partition_log.append(records, batches, on_failure=request.close_when_answered)
        appends.append((answer, partition_log, committed))
        admitted = partition_log.until_admitted()
        if admitted is not None:
            # The partition's buffers are full: read nothing more from this
            # producer until it has room, so its requests keep their order.
            request.hold_reading(admitted)

    blank = {"base_offset": -1, "log_append_time_ms": -1, "log_start_offset": -1, "error_message": None}
    responses = await answer_partitions(request, body["topic_data"], LAYOUT, blank, append, name_of)

    if body["acks"] == 0:
        # The producer reads no answer; the batches still reach the store.
        for _, _, committed in appends:
            committed.addErrback(lambda failure: None)
        return None

    results = await DeferredList([committed for _, _, committed in appends], consumeErrors=True)
    for (answer, partition_log, _), (ok, value) in zip(appends, results):
        if ok:
            answer["base_offset"] = value
            answer["log_start_offset"] = partition_log.log_start_offset
        elif isinstance(value.value, REFUSALS):
            refusal = kafka_error(value.value)
            answer["error_code"], answer["error_message"] = refusal.code, refusal.message
        else:
            # A bug, logged where it happened: the producer may retry.
            answer["error_code"], answer["error_message"] = ErrorCode.UNKNOWN_SERVER_ERROR, str(value.value)
    return {"responses": responses, "throttle_time_ms": 0}


async def _check_keys(records, batch):
    """Refuse a batch holding a record without a key, as Kafka does on a
    compacted topic."""
    try:
        keyless = await _KEY_CHECKS.run(deferToThread, keyless_record, records, batch)
    except InvalidRecords as e:
        raise KafkaError(e.code, e.message) from None
    if keyless is not None:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"record at offset delta {keyless} has no key: compacted topics need keys")


def _validated(records, configs, now_ms):
    """The batches of a partition's records, checked as Kafka checks them
    against their topic's ``configs`` and the broker's clock, ``now_ms``."""
    if records is None or len(records) == 0:
        raise KafkaError(ErrorCode.INVALID_RECORD, "no record batch")
    try:
        batches = list(iter_batches(records))
    except InvalidRecords as e:
        raise KafkaError(e.code, e.message) from None
    if len(batches) != 1:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"{len(batches)} batches: Produce v3+ carries exactly one")
    batch = batches[0]
    limit = topic_configs.effective_int(configs, "max.message.bytes")
    if batch.size > limit:
        raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"batch of {batch.size} bytes exceeds max.message.bytes {limit}")
    if batch.is_control:
        raise KafkaError(ErrorCode.INVALID_RECORD, "clients may not write control batches")
    if topic_configs.effective(configs, "message.timestamp.type") == "CreateTime":
        _check_timestamps(batch, configs, now_ms)
    return batches


async def _verify(request, transactional_id, partition_log, batch):
    """Admit the producer's transactional batches to the partition once its
    coordinator confirms that its ongoing transaction holds the partition
    (KIP-890 part 1): a batch that arrives late, after its transaction
    ended, or before the partition was added, would otherwise hang the
    partition's last stable offset or join the wrong transaction."""
    producer_id, epoch = batch.producer_id, batch.producer_epoch
    if partition_log.is_admitted(producer_id, epoch):
        return
    token = partition_log.verification_token(producer_id)
    key = (partition_log.topic, partition_log.partition)
    held = await request.transactions.verify(transactional_id, producer_id, epoch, [key])
    if not held[key] or not partition_log.admit_transaction(producer_id, epoch, token):
        raise KafkaError(ErrorCode.INVALID_TXN_STATE,
                         f"{key[0]}-{key[1]} is not in an ongoing transaction of producer {producer_id}")


def _check_timestamps(batch, configs, now_ms):
    before = topic_configs.effective_int(configs, "message.timestamp.before.max.ms")
    after = topic_configs.effective_int(configs, "message.timestamp.after.max.ms")
    if now_ms - batch.first_timestamp > before:
        raise KafkaError(ErrorCode.INVALID_TIMESTAMP, f"timestamp {batch.first_timestamp} is more than {before} ms"
                                                      f" before the broker's time {now_ms}")
    if batch.max_timestamp - now_ms > after:
        raise KafkaError(ErrorCode.INVALID_TIMESTAMP, f"timestamp {batch.max_timestamp} is more than {after} ms"
                                                      f" after the broker's time {now_ms}")
