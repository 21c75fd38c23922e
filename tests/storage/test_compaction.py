"""Compaction: which entries are clean, dirty and cleanable, what a pass
keeps of a segment, then compaction by a real broker of what real clients
(confluent-kafka, kafka-python, aiokafka) produced and read."""

import asyncio
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import generate_latest
from twisted.trial import unittest

from kafscale.metadata.interfaces import SegmentRef
from kafscale.metrics import BrokerMetrics
from kafscale.metrics.lag import GroupLag
from kafscale.protocol.records import DELETE_HORIZON_MASK, assign_offsets, decode_records, iter_batches
from kafscale.storage.compaction import (
    CompactionSettings,
    KeyMap,
    cleanable_end,
    compacted_key,
    dirty_state,
    due,
    filter_entry,
    is_compacted,
)
from kafscale.storage.segment import build_segment, read_segment
from kafscale.storage.transactions import AbortedIndex
from tests.support.brokers import in_thread, start_broker
from tests.support.metrics import Samples
from tests.support.records import build_batch
from tests.support.topics import create_topic
from tests.support.transactions import TRANSACTIONS
from tests.support.waiting import eventually

NOW = 1_800_000_000_000


def entry(base, size, compacted=False, max_timestamp=0, aborted=(), open=()):
    key = (compacted_key("t", __import__("uuid").UUID(int=1), 0, base, 1) if compacted
           else f"t/0/segment-{base:020d}-1-0.kfs")
    return SegmentRef(base, base + 9, max_timestamp, size, 10, key, aborted=aborted, open=open)


class PlanTests(unittest.SynchronousTestCase):
    settings = CompactionSettings(min_cleanable_dirty_ratio=0.5, min_compaction_lag_ms=1000,
                                  max_compaction_lag_ms=60_000, delete_retention_ms=100, segment_ms=5000)

    def test_young_entries_and_the_active_segment_are_not_cleanable(self):
        segments = [entry(0, 10), entry(10, 10), entry(20, 10, max_timestamp=NOW - 10), entry(30, 10)]
        # The third holds a record younger than min.compaction.lag.ms.
        self.assertEqual(cleanable_end(segments, NOW, self.settings), 2)
        # The newest entry rolls once its newest record is segment.ms old.
        rolling = [entry(0, 10), entry(10, 10, max_timestamp=NOW - 4999)]
        self.assertEqual(cleanable_end(rolling, NOW, self.settings), 1)
        self.assertEqual(cleanable_end(rolling, NOW + 1, self.settings), 2)
        # One the merge has not settled stops it too.
        self.assertEqual(cleanable_end(segments, NOW, self.settings, lambda ref: ref.base_offset < 10), 1)
        # So does one with a transaction open at its end: its records are undecided.
        undecided = [entry(0, 10), entry(10, 10, open=((7, 15),)), entry(20, 10), entry(30, 10)]
        self.assertEqual(cleanable_end(undecided, NOW, self.settings), 1)

    def test_clean_and_dirty_sections(self):
        segments = [entry(0, 30, compacted=True), entry(10, 10, compacted=True), entry(20, 20), entry(30, 50)]
        self.assertTrue(is_compacted(segments[0]) and not is_compacted(segments[2]))
        state = dirty_state(segments, 3)
        self.assertEqual((state.first_dirty, state.end, state.clean_bytes, state.dirty_bytes), (2, 3, 40, 20))
        self.assertAlmostEqual(state.ratio, 1 / 3)
        # Below min.cleanable.dirty.ratio: not yet, unless the dirty entry is
        # older than max.compaction.lag.ms or a kept tombstone's horizon passed.
        self.assertFalse(due(state, segments, self.settings, 50_000))
        self.assertTrue(due(state, segments, self.settings, 60_001))
        self.assertTrue(due(state, segments, self.settings, 50_000, horizon_ms=50_000))
        self.assertTrue(due(dirty_state(segments, 4), segments, self.settings, 50_000))
        self.assertFalse(due(dirty_state(segments, 2), segments, self.settings, 50_000))


def segment_of(*batches, base=0):
    """A segment of ``batches`` (kafka-python encoded) with offsets from ``base``."""
    blobs = []
    offset = base
    for batch in batches:
        patched, offset = assign_offsets(batch, list(iter_batches(batch)), offset)
        blobs.append(bytes(patched))
    return build_segment(blobs, base)[0]


def kept_records(filtered, base, last):
    data = build_segment(filtered.batches, base, last_offset=last)[0]
    segment = read_segment(data, "out")
    return [(record.offset, record.key, record.value, record.timestamp)
            for batch in iter_batches(segment.batches, verify_crc=False, compacted=True)
            for record in decode_records(segment.batches[batch.position:batch.position + batch.size])]


class FilterTests(unittest.SynchronousTestCase):
    def test_latest_value_per_key_keeps_offsets_and_timestamps(self):
        data = segment_of(build_batch([(b"a", b"1", []), (b"b", b"1", []), (None, b"keyless", [])]),
                          build_batch([(b"a", b"2", []), (b"c", b"1", [])], first_timestamp=NOW))
        keys = KeyMap()
        keys.add(data, "in")
        filtered = filter_entry(data, "in", keys, NOW, 1000)
        self.assertTrue(filtered.changed)
        self.assertIsNone(filtered.horizon_ms)
        self.assertEqual(kept_records(filtered, 0, 4), [
            (1, b"b", b"1", 1_700_000_000_010), (3, b"a", b"2", NOW), (4, b"c", b"1", NOW + 10)])

    def test_tombstones_go_on_the_pass_after_their_horizon(self):
        data = segment_of(build_batch([(b"a", b"1", []), (b"a", None, [])]))
        keys = KeyMap()
        keys.add(data, "in")
        first = filter_entry(data, "in", keys, NOW, 1000)
        # The first pass keeps the tombstone and stamps its delete horizon.
        self.assertEqual(first.horizon_ms, NOW + 1000)
        self.assertEqual(kept_records(first, 0, 1), [(1, b"a", None, 1_700_000_000_010)])
        stamped = build_segment(first.batches, 0, last_offset=1)[0]
        (batch,) = iter_batches(read_segment(stamped, "c").batches, compacted=True)
        self.assertTrue(batch.attributes & DELETE_HORIZON_MASK)
        self.assertEqual(batch.first_timestamp, NOW + 1000)
        # Before the horizon it stays, unchanged; after, it goes.
        keys = KeyMap()
        again = filter_entry(stamped, "c", keys, NOW + 999, 1000)
        self.assertFalse(again.changed)
        self.assertEqual(again.horizon_ms, NOW + 1000)
        gone = filter_entry(stamped, "c", keys, NOW + 1000, 1000)
        self.assertEqual((gone.batches, gone.horizon_ms), ([], None))
        # A segment that kept nothing spans its offsets all the same.
        empty = read_segment(build_segment(gone.batches, 0, last_offset=1)[0], "e")
        self.assertEqual((empty.base_offset, empty.last_offset, empty.count), (0, 1, 0))

    def test_aborted_transactions_go_and_committed_ones_are_compacted(self):
        data = segment_of(build_batch([(b"a", b"aborted", [])], producer=(7, 0, 0), transactional=True),
                          build_batch([(b"a", b"committed", []), (b"b", b"1", [])], producer=(8, 0, 0),
                                      transactional=True),
                          build_batch([(b"b", b"2", [])], first_timestamp=NOW))
        # Producer 7's transaction from offset 0 was aborted by a marker at 1.
        keys = KeyMap(AbortedIndex([entry(0, 10, aborted=((7, 0, 1),))]))
        keys.add(data, "in")
        self.assertEqual(keys.offsets, {b"a": 1, b"b": 3})
        filtered = filter_entry(data, "in", keys, NOW, 1000)
        self.assertTrue(filtered.changed)
        self.assertEqual([(offset, key, value) for offset, key, value, _ in kept_records(filtered, 0, 3)],
                         [(1, b"a", b"committed"), (3, b"b", b"2")])
        # The committed transaction's batch stays transactional.
        batches = [info for blob in filtered.batches for info in iter_batches(blob, compacted=True)]
        self.assertEqual([(b.producer_id, b.is_transactional, b.record_count) for b in batches],
                         [(7, True, 0), (8, True, 1), (-1, False, 1)])

    def test_an_idempotent_producers_last_batch_keeps_its_header(self):
        data = segment_of(build_batch([(b"a", b"1", [])], producer=(7, 0, 0)),
                          build_batch([(b"a", b"2", [])], producer=(7, 0, 1)),
                          build_batch([(b"a", b"3", [])]))
        keys = KeyMap()
        keys.add(data, "in")
        filtered = filter_entry(data, "in", keys, NOW, 1000)
        batches = [info for blob in filtered.batches for info in iter_batches(blob, compacted=True)]
        # Producer 7's first batch goes; its last stays, without records.
        self.assertEqual([(b.base_offset, b.record_count, b.producer_id, b.base_sequence) for b in batches],
                         [(1, 0, 7, 1), (2, 1, -1, -1)])


# A broker that merges and compacts at once, every 50 ms, and applies
# retention every 100 ms.
COMPACTING = ["--merge-delay-ms", "0", "--merge-check-interval-ms", "50", "--merge-delete-delay-ms", "100",
              "--retention-check-interval-ms", "100"]
COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "3600000",
             "segment.ms": "200"}
KEYS = 20


def produce_rounds(bootstrap, topic, rounds, tombstones=(), **settings):
    """Every key updated ``rounds`` times, each round its own flush, then a
    tombstone for each of ``tombstones``, then a closing record under its
    own key. -> {offset: (key, value)}."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", **settings})
    written = {}

    def keep(error, message):
        assert error is None, error
        written[message.offset()] = (message.key(), message.value())

    for round_number in range(rounds):
        for key in range(KEYS):
            producer.produce(topic, key=b"k%d" % key, value=b"v%d-%d" % (key, round_number), on_delivery=keep)
        producer.flush(20)
    for key in tombstones:
        producer.produce(topic, key=b"k%d" % key, value=None, on_delivery=keep)
    producer.flush(20)
    producer.produce(topic, key=b"closing", value=b"end", on_delivery=keep)
    assert producer.flush(20) == 0
    return written


def latest(written, before):
    """The newest (offset, key, value) of each key below offset ``before``."""
    newest = {}
    for offset in sorted(written):
        if offset < before:
            newest[written[offset][0]] = (offset, *written[offset])
    return sorted(newest.values())


def read_confluent(bootstrap, topic, start=0, until=None, **settings):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-tests",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **settings})
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        got = []
        deadline = time.monotonic() + 20
        while (until is None or not got or got[-1][0] < until - 1) and time.monotonic() < deadline:
            messages = consumer.consume(1000, 1.0)
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                got.append((message.offset(), message.key(), message.value()))
            # A quiet poll ends a read to the end once something came (or
            # after a few seconds, for an empty log).
            if until is None and not messages and (got or time.monotonic() > deadline - 15):
                break
        return got
    finally:
        consumer.close()


def read_kafka_python(bootstrap, topic, until):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as PyTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partition = PyTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        got = []
        deadline = time.monotonic() + 20
        while (not got or got[-1][0] < until - 1) and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                got += [(record.offset, record.key, record.value) for record in records]
        return got
    finally:
        consumer.close()


async def read_aiokafka(bootstrap, topic, until):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([AioTopicPartition(topic, 0)])
        got = []
        deadline = time.monotonic() + 20
        while (not got or got[-1][0] < until - 1) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got += [(record.offset, record.key, record.value) for record in records]
        return got
    finally:
        await consumer.stop()


def produce_in_transactions(bootstrap, topic, rounds):
    """Every key written once per round, each round one transaction,
    committed or aborted as ``rounds`` (a list of booleans) says, then a
    closing committed transaction. -> {offset: (key, value)} of the
    committed records."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"compacting-{topic}", "linger.ms": 5})
    producer.init_transactions(20)
    written = {}
    for round_number, commit in enumerate(rounds):
        delivered = {}

        def keep(error, message, delivered=delivered):
            assert error is None, error
            delivered[message.offset()] = (message.key(), message.value())

        producer.begin_transaction()
        for key in range(KEYS):
            producer.produce(topic, key=b"k%d" % key, value=b"v%d-%d" % (key, round_number), on_delivery=keep)
        producer.flush(20)
        if commit:
            producer.commit_transaction(20)
            written.update(delivered)
        else:
            producer.abort_transaction(20)
    producer.begin_transaction()
    producer.produce(topic, key=b"closing", value=b"end", on_delivery=lambda error, message: written.update(
        {message.offset(): (message.key(), message.value())}))
    producer.commit_transaction(20)
    return written


class CompactionTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *COMPACTING, *TRANSACTIONS)

    def log(self, topic):
        return self.broker.logs[topic, 0]

    def compacted(self, topic):
        """Whether every segment is compacted."""
        return all(is_compacted(ref) for ref in self.log(topic).state.segments)

    async def test_latest_value_per_key_for_every_client(self):
        await create_topic(self.bootstrap, "table", **COMPACTED)
        written = await in_thread(produce_rounds, self.bootstrap, "table", 5, tombstones=(3, 4))
        await eventually(lambda: self.compacted("table"), timeout=20, what="compaction")
        closing = max(written)
        expected = latest(written, closing + 1)
        # Exactly the latest value per key (the young tombstones included),
        # at the offsets they were written at.
        self.assertEqual(len(expected), KEYS + 1)
        self.assertIn((max(written) - 1, b"k4", None), expected)
        self.assertEqual(await in_thread(read_confluent, self.bootstrap, "table"), expected)
        self.assertEqual(await in_thread(read_kafka_python, self.bootstrap, "table", closing + 1), expected)
        self.assertEqual(await in_thread(lambda: asyncio.run(read_aiokafka(self.bootstrap, "table", closing + 1))),
                         expected)
        self.assertEqual((self.log("table").log_start_offset, self.log("table").high_watermark), (0, closing + 1))
        # The metrics say what compaction did.
        metrics = BrokerMetrics()
        metrics.watch(self.broker, [], GroupLag(self.broker.metadata, self.broker.view, self.broker.logs, 60))
        samples = Samples(generate_latest(metrics.registry).decode())
        self.assertGreater(samples.total("kafscale_compacted_bytes_total"), self.log("table").state.segments.size)
        self.assertEqual(samples.by("kafscale_compaction_dirty_ratio", "topic"), {"table": 0})

    async def test_transactions_committed_are_compacted_and_aborted_ones_dropped(self):
        await create_topic(self.bootstrap, "changelog", **COMPACTED)
        written = await in_thread(produce_in_transactions, self.bootstrap, "changelog", [True, False, True, False])
        await eventually(lambda: self.compacted("changelog"), timeout=20, what="compaction")
        expected = latest(written, max(written) + 1)
        self.assertEqual(len(expected), KEYS + 1)
        # Even read uncommitted: the aborted records are gone, not just skipped.
        self.assertEqual(await in_thread(read_confluent, self.bootstrap, "changelog",
                                         **{"isolation.level": "read_uncommitted"}), expected)
        self.assertEqual(await in_thread(read_confluent, self.bootstrap, "changelog"), expected)

    async def test_keyless_records_are_refused(self):
        await create_topic(self.bootstrap, "table", **COMPACTED)

        def send(key):
            producer = Producer({"bootstrap.servers": self.bootstrap, "retries": 0})
            outcome = []
            producer.produce("table", key=key, value=b"v", on_delivery=lambda error, message: outcome.append(error))
            producer.flush(20)
            return outcome[0]

        error = await in_thread(send, None)
        self.assertEqual(error.code(), KafkaError.INVALID_RECORD)
        self.assertIsNone(await in_thread(send, b"key"))

    async def test_a_consumer_mid_log_carries_on(self):
        await create_topic(self.bootstrap, "table", **COMPACTED)
        written = await in_thread(produce_rounds, self.bootstrap, "table", 2)
        position = KEYS + 5
        first = [record for record in await in_thread(read_confluent, self.bootstrap, "table", 0, position)
                 if record[0] < position]
        more = await in_thread(produce_rounds, self.bootstrap, "table", 3, tombstones=(1,))
        written.update(more)
        await eventually(lambda: self.compacted("table") and self.log("table").high_watermark == max(written) + 1,
                         timeout=20, what="compaction")
        rest = await in_thread(read_confluent, self.bootstrap, "table", position)
        # From where it stopped on, the consumer reads what compaction left,
        # and has seen the latest value of every key.
        expected = latest(written, max(written) + 1)
        self.assertEqual(rest, [record for record in expected if record[0] >= position])
        seen = {key: (offset, value) for offset, key, value in first + rest}
        self.assertEqual(sorted((offset, key, value) for key, (offset, value) in seen.items()), expected)

    async def test_list_offsets_by_timestamp(self):
        await create_topic(self.bootstrap, "timed", **COMPACTED)
        start = int(time.time() * 1000) - 100_000

        def produce_timed():
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
            for round_number in range(4):
                for key in range(KEYS):
                    # Keys 0-9 are updated every round, the others once.
                    if round_number == 0 or key < 10:
                        producer.produce("timed", key=b"k%d" % key, value=b"r%d" % round_number,
                                         timestamp=start + 1000 * round_number + key)
                producer.flush(20)

        def offsets_for(times):
            from kafka import KafkaConsumer
            from kafka import TopicPartition as PyTopicPartition

            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
            try:
                partition = PyTopicPartition("timed", 0)
                found = [consumer.offsets_for_times({partition: t})[partition] for t in times]
                return [-1 if answer is None else answer.offset for answer in found]
            finally:
                consumer.close()

        await in_thread(produce_timed)
        await eventually(lambda: self.compacted("timed") and self.log("timed").high_watermark == KEYS + 30,
                         timeout=20, what="compaction")
        # Round 0 keeps keys 10-19 (offsets 10-19), the later rounds only
        # their last: keys 0-9 of round 3, offsets 40-49.
        times = [start, start + 9, start + 10, start + 19, start + 20, start + 1000, start + 3000, start + 3009,
                 start + 3010]
        self.assertEqual(await in_thread(offsets_for, times), [10, 10, 10, 19, 40, 40, 40, 49, -1])

    async def test_tombstones_go_after_delete_retention(self):
        await create_topic(self.bootstrap, "table", **{**COMPACTED, "delete.retention.ms": "1000"})

        async def produce_aiokafka():
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            await producer.start()
            try:
                for round_number in range(3):
                    batch = [await producer.send("table", key=b"k%d" % key, value=b"v%d" % round_number)
                             for key in range(KEYS)]
                    await asyncio.gather(*batch)
                for key in (2, 3):
                    await (await producer.send("table", key=b"k%d" % key, value=None))
            finally:
                await producer.stop()

        await in_thread(lambda: asyncio.run(produce_aiokafka()))
        await eventually(lambda: self.compacted("table") and self.log("table").high_watermark == 3 * KEYS + 2,
                         timeout=20, what="compaction")
        compacted = await in_thread(read_confluent, self.bootstrap, "table")
        # Young tombstones stay: a consumer sees the deletes.
        self.assertEqual([record for record in compacted if record[2] is None],
                         [(3 * KEYS, b"k2", None), (3 * KEYS + 1, b"k3", None)])
        self.assertEqual(len(compacted), KEYS)

        async def tombstones_gone():
            records = await in_thread(read_confluent, self.bootstrap, "table")
            return all(value is not None for _, _, value in records) and len(records) == KEYS - 2

        await eventually(tombstones_gone, timeout=20, interval=0.2, what="tombstones removed")

    async def test_a_topic_switched_to_compact_and_back(self):
        from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
        from kafka import KafkaProducer

        await create_topic(self.bootstrap, "switched", **{"segment.ms": "200"})
        admin = AdminClient({"bootstrap.servers": self.bootstrap})

        def alter(**configs):
            entries = [ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
                       for name, value in configs.items()]
            future = admin.incremental_alter_configs([ConfigResource("TOPIC", "switched",
                                                                     incremental_configs=entries)])
            next(iter(future.values())).result(20)

        def produce_python(records):
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            try:
                futures = [producer.send("switched", key=key, value=value) for key, value in records]
                producer.flush(20)
                return [future.get(20).offset for future in futures]
            finally:
                producer.close()

        rounds = [[(b"k%d" % key, b"v%d-%d" % (key, r)) for key in range(KEYS)] for r in range(3)]
        for records in rounds[:2]:
            await in_thread(produce_python, records)
        await in_thread(produce_python, [(None, b"keyless")])
        await in_thread(produce_python, rounds[2])
        # Under delete, nothing is compacted.
        await eventually(lambda: len(self.log("switched").state.segments) == 1, timeout=20, what="merges")
        self.assertFalse(any(is_compacted(ref) for ref in self.log("switched").state.segments))
        await in_thread(alter, cleanup_policy="compact", min_cleanable_dirty_ratio="0.01")
        await eventually(lambda: self.compacted("switched"), timeout=20, what="compaction")
        # The keyless record written under delete goes, as Kafka's cleaner drops it.
        self.assertEqual(await in_thread(read_confluent, self.bootstrap, "switched"),
                         [(2 * KEYS + 1 + key, b"k%d" % key, b"v%d-2" % key) for key in range(KEYS)])
        # Back to delete: keyless records are taken again, and retention by
        # time drops compacted segments like any other.
        await in_thread(alter, cleanup_policy="delete")
        (offset,) = await in_thread(produce_python, [(None, b"keyless again")])
        self.assertEqual(offset, 3 * KEYS + 1)
        await in_thread(alter, cleanup_policy="delete", retention_ms="1")
        await eventually(lambda: self.log("switched").log_start_offset == offset + 1, timeout=20,
                         what="retention")
