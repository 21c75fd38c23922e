"""PartitionLog on a real local object store and the embedded metadata
store: group commit, failures without gaps, keys never reused, reads
across segments."""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import fail
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import MetadataUnavailable
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.records import iter_batches
from kafscale.storage.cache import SegmentCache
from kafscale.storage.interfaces import ObjectStoreUnavailable
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from kafscale.storage.segment import index_key
from tests.support.faults import Held
from tests.support.records import build_batch
from tests.support.waiting import sleep


def records(*values):
    blob = build_batch([(None, value, []) for value in values])
    return blob, list(iter_batches(blob))


class Refusing:
    """A metadata store whose next commits fail without being applied."""

    def __init__(self, store):
        self.store = store
        self.refusals = 0

    def commit_segment(self, *args):
        if self.refusals:
            self.refusals -= 1
            return fail(MetadataUnavailable("etcd is down"))
        return self.store.commit_segment(*args)

    def __getattr__(self, name):
        return getattr(self.store, name)


class PartitionLogTests(unittest.TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-log-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = Held(LocalObjectStore(os.path.join(directory, "objects")))
        self.metadata = Refusing(self.store)
        self.topic = await self.store.create_topic("t", 1)
        state = await self.store.partition_state("t", 0)
        self.state = await self.store.claim_partition("t", 0, state.leader_epoch)
        self.cache = SegmentCache(64 << 20)
        self.log = self.open_log()

    def open_log(self, state=None, **settings):
        return PartitionLog(
            state or self.state, topic_id=self.topic.topic_id, metadata=self.metadata, objects=self.objects,
            cache=self.cache, budget=BufferBudget(64 << 20), settings=LogSettings(**settings), reactor=reactor,
        )

    async def test_appends_during_a_flush_share_the_next_one(self):
        gate = self.objects.hold()
        first = self.log.append(*records(b"a"))
        rest = [self.log.append(*records(b"%d" % i)) for i in range(10)]
        gate.callback(None)
        self.assertEqual(await first, 0)
        self.assertEqual([await d for d in rest], list(range(1, 11)))
        self.assertEqual([(s.base_offset, s.last_offset) for s in self.log.state.segments], [(0, 0), (1, 10)])

    async def test_failed_upload_fails_its_producers_and_leaves_no_gap(self):
        gate = self.objects.hold()
        failed = self.log.append(*records(b"lost"))
        gate.errback(ObjectStoreUnavailable("S3 is down"))
        with self.assertRaises(KafkaError) as raised:
            await failed
        self.assertEqual(raised.exception.code, ErrorCode.KAFKA_STORAGE_ERROR)
        self.assertTrue(ErrorCode(raised.exception.code).retriable)
        self.assertEqual(await self.log.append(*records(b"kept")), 0)
        self.assertEqual(self.log.high_watermark, 1)

    async def test_a_retried_flush_never_reuses_a_key(self):
        self.metadata.refusals = 1
        with self.assertRaises(KafkaError):
            await self.log.append(*records(b"first try"))
        self.assertEqual(await self.log.append(*records(b"second try")), 0)
        stored = [o.key for o in await self.objects.list("t/") if o.key.endswith(".kfs")]
        self.assertEqual(len(stored), 2)
        committed = self.log.state.segments[0].key
        self.assertIn(committed, stored)
        data = await self.log.read(0, 1 << 20)
        self.assertIn(b"second try", bytes(data))

    async def test_reads_run_across_segments(self):
        for value in (b"one", b"two", b"three"):
            await self.log.append(*records(value))
        self.assertEqual(len(self.log.state.segments), 3)
        batches = list(iter_batches(await self.log.read(0, 1 << 20)))
        self.assertEqual([b.base_offset for b in batches], [0, 1, 2])
        # a byte limit stops at a batch boundary, never inside one
        one_batch = batches[0].size
        batches = list(iter_batches(await self.log.read(0, one_batch + 10)))
        self.assertEqual([b.base_offset for b in batches], [0])

    async def test_index_follows_the_commit_and_is_not_required(self):
        await self.log.append(*records(b"indexed"))
        key = self.log.state.segments[0].key
        for _ in range(100):
            if any(o.key == index_key(key) for o in await self.objects.list("t/")):
                break
            await sleep(0.01)
        else:
            self.fail("the index was never uploaded")
        # a reader of large segments uses the index, and copes without it
        ranged = self.open_log(self.log.state, whole_segment_limit=0)
        self.cache.discard(key)
        self.assertIn(b"indexed", bytes(await ranged.read(0, 1 << 20)))
        await self.objects.delete(index_key(key))
        self.assertIn(b"indexed", bytes(await ranged.read(0, 1 << 20)))

    async def test_offsets_outside_the_log(self):
        await self.log.append(*records(b"only"))
        with self.assertRaises(KafkaError) as raised:
            await self.log.read(2, 100)
        self.assertEqual(raised.exception.code, ErrorCode.OFFSET_OUT_OF_RANGE)
        self.assertEqual(len(await self.log.read(1, 100)), 0)

    async def test_close_flushes_then_refuses(self):
        gate = self.objects.hold()
        pending = self.log.append(*records(b"last"))
        closing = self.log.close()
        gate.callback(None)
        await closing
        self.assertEqual(await pending, 0)
        with self.assertRaises(KafkaError) as raised:
            self.log.append(*records(b"late"))
        self.assertEqual(raised.exception.code, ErrorCode.NOT_LEADER_OR_FOLLOWER)

    async def test_prefetch_loads_the_segment_a_read_will_want(self):
        await self.log.append(*records(b"cold"))
        key = self.log.state.segments[0].key
        self.cache.discard(key)
        self.log.prefetch(5)  # beyond the log: nothing to load
        self.assertNotIn(key, self.cache)
        self.log.prefetch(0)
        for _ in range(100):
            if key in self.cache:
                break
            await sleep(0.01)
        self.assertIn(key, self.cache)
