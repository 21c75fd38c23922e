"""``kafscale-admin segments`` beside a running broker: listings from the
manifest (slices of shared objects said to be shared), inspected and dumped
objects (compressed ones too, and a format-1 segment as brokers wrote them
before shared objects), and verify and gc finding what is damaged, missing
or orphaned."""

from confluent_kafka import Producer

from kafscale.metadata.interfaces import SegmentRef
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import Compression, assign_offsets, iter_batches
from kafscale.storage.object_format import object_key
from kafscale.storage.segment import build_segment, index_key, partition_prefix, segment_keys
from tests.support.admin import AdminCase, EtcdStores, S3Stores
from tests.support.brokers import in_thread
from tests.support.records import build_batch
from tests.support.topics import create_topic
from tests.support.wire import Connection

BASE_TIME = 1_700_000_000_000


def produce_batch(bootstrap, topic, records, compression="none"):
    """One batch per partition of (partition, key, value, headers, timestamp)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "compression.type": compression})
    for partition, key, value, headers, timestamp in records:
        producer.produce(topic, key=key, value=value, headers=headers, timestamp=timestamp, partition=partition)
    if producer.flush(20):
        raise AssertionError("records left unacknowledged")


def produce_together(bootstrap, topic, batches):
    """One Produce request carrying a batch for each partition of
    ``batches`` ({partition: batch})."""
    connection = Connection(bootstrap)
    try:
        request = {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": topic, "partition_data": [{"index": p, "records": b} for p, b in batches.items()]}]}
        response = connection.request(ApiKey.PRODUCE, 9, request)
    finally:
        connection.close()
    errors = [p["error_code"] for t in response["responses"] for p in t["partition_responses"]]
    if any(errors):
        raise AssertionError(f"produce failed: {errors}")


class SegmentsContract:
    async def setUp(self):
        await super().setUp()
        await create_topic(self.bootstrap, "logs", 2)
        await in_thread(produce_batch, self.bootstrap, "logs", [
            (0, b"k1", b"plain text", [("trace", b"t-1")], BASE_TIME),
            (0, None, b"\x00\xff\xfe", None, BASE_TIME + 1),
        ])
        # Partition 0's second batch and partition 1's first, in one request,
        # share an object.
        await in_thread(produce_together, self.bootstrap, "logs", {
            0: build_batch([(b"k%d" % i, b"compressed %d" % i, []) for i in range(3)], Compression.GZIP,
                           first_timestamp=BASE_TIME + 10),
            1: build_batch([(b"p1", b"other", [])], Compression.GZIP, first_timestamp=BASE_TIME),
        })
        self.topic_id = self.broker.topics["logs"].topic_id
        self.segments = self.broker.logs["logs", 0].state.segments + self.broker.logs["logs", 1].state.segments
        self.assertEqual([s.key for s in self.segments[1:]], [self.segments[1].key] * 2)

    async def legacy_segment(self):
        """A topic whose one segment is format 1, with its .index, as a
        broker wrote them before shared objects. -> its SegmentRef."""
        await create_topic(self.bootstrap, "legacy")
        log = self.broker.logs["legacy", 0]
        blob = build_batch([(b"old", b"format one", [])], first_timestamp=BASE_TIME)
        patched, _ = assign_offsets(blob, list(iter_batches(blob)), 0, log.leader_epoch)
        kfs, index, info = build_segment([patched], 0)
        keys = segment_keys("legacy", log.topic_id, 0, 0, log.leader_epoch, 0)
        await self.broker.objects.put(keys.kfs, kfs)
        await self.broker.objects.put(keys.index, index)
        ref = SegmentRef(0, info.last_offset, info.max_timestamp, info.size, info.count, keys.kfs)
        await self.broker.metadata.commit_segment("legacy", 0, log.leader_epoch, 0, ref)
        return ref

    async def test_list(self):
        rows = await self.admin_json("segments", "list", "logs")
        self.assertEqual(
            [(r["partition"], r["base_offset"], r["last_offset"], r["records"], r["bytes"], r["key"], r["format"],
              r["position"], r["shared_with"]) for r in rows],
            [(0, 0, 1, 2, self.segments[0].size, self.segments[0].key, 2, 20, []),
             (0, 2, 4, 3, self.segments[1].size, self.segments[1].key, 2, 20, [1]),
             (1, 0, 0, 1, self.segments[2].size, self.segments[1].key, 2, 20 + self.segments[1].size, [0])],
        )
        self.assertEqual(rows[1]["max_timestamp"], BASE_TIME + 30)
        only = await self.admin_json("segments", "list", "logs", "-p", "1")
        self.assertEqual([r["partition"] for r in only], [1])
        table = (await self.admin("segments", "list", "logs")).stdout
        name = self.segments[1].key.rpartition("/")[2]
        self.assertRegex(
            table, rf"│ +0 │ +2 │ +4 │ +3 │ +{self.segments[1].size} │ 2023-11-14T22:13:20\.030\+00:00 │ "
                   rf"{name} │ +2 │ 1 +│")
        await self.refused("segments", "list", "nothing", says="no topic 'nothing'")
        await self.refused("segments", "list", "logs", "-p", "9", says="topic logs has no partition 9")

    async def test_inspect(self):
        document = await self.admin_json("segments", "inspect", "logs", "0", "3")
        self.assertEqual((document["key"], document["format"], document["verdict"]), (self.segments[1].key, 2, "ok"))
        self.assertEqual(document["header"]["magic"], "KAFS")
        self.assertEqual((document["header"]["base_offset"], document["header"]["records"]), (2, 3))
        self.assertEqual((document["footer"]["magic"], document["footer"]["last_offset"]), ("END!", 4))
        self.assertNotIn("index", document)
        self.assertEqual([(s["topic"], s["partition"], s["base_offset"], s["last_offset"])
                          for s in document["object"]["slices"]], [("logs", 0, 2, 4), ("logs", 1, 0, 0)])
        [batch] = document["batches"]
        self.assertEqual((batch["base_offset"], batch["last_offset"], batch["records"], batch["compression"],
                          batch["crc_ok"]), (2, 4, 3, "gzip", True))
        table = (await self.admin("segments", "inspect", "logs", "0", "0")).stdout
        self.assertIn(f"slice of shared object {self.segments[0].key} at byte 20 ({self.segments[0].size} bytes): ok",
                      table)
        self.assertRegex(table, r"│ +32 │ +0 │ +1 │ +2 │ +\d+ │ 2023-11-14T22:13:20\.000\+00:00 │ "
                                r"2023-11-14T22:13:20\.001\+00:00 │ none +│ yes +│")
        self.assertIn("the object's slices (2 partitions)", (await self.admin("segments", "inspect", "logs", "1",
                                                                               "0")).stdout)
        await self.refused("segments", "inspect", "logs", "0", "5",
                           says="offset 5 is in no segment of logs-0 (log start 0, high watermark 5)")

    async def test_inspect_a_format_1_segment(self):
        ref = await self.legacy_segment()
        document = await self.admin_json("segments", "inspect", "legacy", "0", "0")
        self.assertEqual((document["key"], document["format"], document["verdict"]), (ref.key, 1, "ok"))
        self.assertEqual((document["index"]["verdict"], document["index"]["entries"]), ("ok", [[0, 32]]))
        records = await self.admin_json("segments", "dump", "legacy", "0", "0", "--records")
        self.assertEqual([(r["offset"], r["value"]) for r in records], [(0, "format one")])

    async def test_dump(self):
        records = await self.admin_json("segments", "dump", "logs", "0", "0", "--records")
        self.assertEqual(records, [
            {"offset": 0, "timestamp": BASE_TIME, "key": "k1", "value": "plain text", "headers": [["trace", "t-1"]]},
            {"offset": 1, "timestamp": BASE_TIME + 1, "key": None, "value": "base64:AP/+", "headers": []},
        ])
        compressed = await self.admin_json("segments", "dump", "logs", "0", "3", "--records")
        self.assertEqual([(r["offset"], r["key"], r["value"]) for r in compressed],
                         [(3, "k1", "compressed 1"), (4, "k2", "compressed 2")])
        table = (await self.admin("segments", "dump", "logs", "0", "2", "--records")).stdout
        self.assertRegex(table, r"│ +2 │ 2023-11-14T22:13:20\.010\+00:00 │ k0 +│ compressed 0 │ - +│")
        batches = await self.admin_json("segments", "dump", "logs", "1", "0")
        self.assertEqual([(b["base_offset"], b["records"], b["crc_ok"]) for b in batches], [(0, 1, True)])

    async def test_verify_finds_damage_gaps_and_orphans(self):
        legacy = await self.legacy_segment()
        clean = await self.admin("segments", "verify")
        self.assertIn("4 segments checked: no problems", clean.stdout)

        alone, shared, _ = self.segments
        data = bytearray(await self.broker.objects.get(shared.key))
        data[shared.position + 100] ^= 0xFF
        await self.broker.objects.put(shared.key, bytes(data))
        await self.broker.objects.delete(alone.key)
        await self.broker.objects.delete(index_key(legacy.key))
        # A deposed owner's upload (epoch 0) below the high watermark.
        orphan = f"{partition_prefix('logs', self.topic_id, 1)}segment-{0:020d}-0-0.kfs"
        await self.broker.objects.put(orphan, b"whatever")

        report = await self.admin_json("segments", "verify", exit_code=1)
        self.assertEqual(report["checked"], 2)
        self.assertEqual(sorted((p["problem"], p["key"]) for p in report["problems"]), sorted([
            ("corrupt", shared.key), ("missing", alone.key), ("missing", index_key(legacy.key)), ("orphan", orphan)]))
        corrupt = next(p for p in report["problems"] if p["problem"] == "corrupt")
        self.assertRegex(corrupt["detail"], r"CRC-32C 0x[0-9a-f]{8} != stored 0x[0-9a-f]{8}")
        table = (await self.admin("segments", "verify", "logs", exit_code=1)).stdout
        self.assertRegex(table, rf"│ orphan +│ {orphan} +│ written by a deposed owner +│")

        inspected = await self.admin_json("segments", "inspect", "logs", "0", "3")
        self.assertIn("CRC-32C", inspected["verdict"])
        self.assertEqual([b["crc_ok"] for b in inspected["batches"]], [False])

    async def test_gc_deletes_only_what_nobody_can_commit(self):
        log = self.broker.logs["logs", 1]
        prefix = partition_prefix("logs", self.topic_id, 1)
        payload = await self.broker.objects.get(self.segments[2].key)
        # An earlier incarnation of the topic, a deposed owner's upload, a
        # flush by the current owner that may be about to commit, and a
        # file that is no segment at all.
        stale = f"logs/{'0' * 32}/1/segment-{0:020d}-1-0.kfs"
        deposed = f"{prefix}segment-{0:020d}-0-0.index"
        pending = f"{prefix}segment-{1:020d}-{log.leader_epoch}-7.kfs"
        unknown = f"{prefix}README"

        # A merge by the current owner about to swap its output in.
        merging = f"{prefix}segment-{0:020d}-{log.leader_epoch}-m0123456789ab.kfs"
        # A multi-partition object whose commits may be about to land.
        shared = object_key(7, BASE_TIME)
        for key in (stale, deposed, pending, unknown, merging, shared):
            await self.broker.objects.put(key, payload)

        dry = await self.admin_json("segments", "gc")
        self.assertEqual(dry["executed"], False)
        self.assertEqual(sorted((o["key"], o["reason"]) for o in dry["orphans"]), [
            (stale, "an earlier incarnation of the topic"),
            (deposed, "written by a deposed owner"),
        ])
        table = (await self.admin("segments", "gc", "--execute")).stdout
        self.assertIn(f"deleted: 2 objects, {2 * len(payload)} bytes", table)
        remaining = {item.key for item in await self.broker.objects.list("logs/")}
        self.assertEqual({stale, deposed} & remaining, set())
        self.assertEqual({pending, unknown, merging} - remaining, set())
        self.assertIn("no orphans", (await self.admin("segments", "gc")).stdout)
        # Past the grace period, a flush or a merge that has not committed
        # by now never will.
        late = await self.admin_json("segments", "gc", "--grace", "0", "--execute")
        self.assertEqual(sorted((o["key"], o["reason"]) for o in late["orphans"]), sorted([
            (merging, "a merge or compaction that was never swapped in, or was replaced"),
            (pending, "an upload whose commit failed"),
            (shared, "no partition's manifest names it"),
        ]))
        remaining = {item.key for item in await self.broker.objects.list("")}
        self.assertEqual({pending, merging, shared} & remaining, set())
        self.assertIn(unknown, remaining)
        # What is left still reads.
        self.assertEqual(len(await self.admin_json("segments", "list", "logs")), 3)


class EmbeddedSegmentsTests(SegmentsContract, AdminCase):
    pass


class S3SegmentsTests(SegmentsContract, S3Stores, AdminCase):
    pass


class EtcdSegmentsTests(SegmentsContract, EtcdStores, AdminCase):
    pass
