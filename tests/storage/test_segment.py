"""Segment and index objects: layout, verification, ranged reads."""

import struct
import uuid

from kafka.record.default_records import DefaultRecordBatch
from twisted.trial import unittest

from kafscale.protocol.records import assign_offsets, iter_batches
from kafscale.storage.segment import (
    FOOTER_SIZE,
    HEADER_SIZE,
    INDEX_HEADER_SIZE,
    CorruptSegment,
    SegmentInfo,
    build_segment,
    index_key,
    partition_prefix,
    read_index,
    read_range,
    read_segment,
    segment_keys,
    topic_prefix,
)
from tests.support.records import build_batch

TOPIC_ID = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
KEY = "orders/0f1e2d3c4b5a69788796a5b4c3d2e1f0/3/segment-00000000000000000100-7-2.kfs"
INDEX_KEY = "orders/0f1e2d3c4b5a69788796a5b4c3d2e1f0/3/segment-00000000000000000100-7-2.index"


def produced_blobs(base_offset, requests):
    """Offset-assigned blobs as the produce path makes them.

    ``requests`` is a list of produce requests, each a list of batch record
    counts; batch ``n`` of the log gets values of a size that varies with ``n``.
    """
    blobs = []
    next_offset = base_offset
    n = 0
    for counts in requests:
        raw = b""
        for count in counts:
            raw += build_batch(
                [(b"k", b"v" * (10 + 7 * n), [("h", b"%d" % n)])] * count,
                first_timestamp=1_700_000_000_000 + 1000 * n,
            )
            n += 1
        blob, next_offset = assign_offsets(raw, list(iter_batches(raw)), next_offset)
        blobs.append(blob)
    return blobs


class KeyTests(unittest.TestCase):
    def test_layout(self):
        self.assertEqual(segment_keys("orders", TOPIC_ID, 3, 100, 7, 2), (KEY, INDEX_KEY))
        self.assertEqual(index_key(KEY), INDEX_KEY)
        self.assertEqual(partition_prefix("orders", TOPIC_ID, 3), KEY.rsplit("/", 1)[0] + "/")
        self.assertEqual(topic_prefix("orders", TOPIC_ID), "orders/0f1e2d3c4b5a69788796a5b4c3d2e1f0/")

    def test_owners_never_share_a_key(self):
        """A deposed owner's late upload cannot replace its successor's object."""
        self.assertNotEqual(segment_keys("t", TOPIC_ID, 0, 0, 1, 0), segment_keys("t", TOPIC_ID, 0, 0, 2, 0))
        self.assertNotEqual(segment_keys("t", TOPIC_ID, 0, 0, 1, 0), segment_keys("t", TOPIC_ID, 0, 0, 1, 1))
        self.assertNotEqual(segment_keys("t", TOPIC_ID, 0, 0, 1, 0), segment_keys("t", uuid.uuid4(), 0, 0, 1, 0))


class BuildAndReadTests(unittest.TestCase):
    def setUp(self):
        self.blobs = produced_blobs(100, [[2, 1], [5], [1, 1, 3]])
        self.kfs, self.index, self.info = build_segment(
            self.blobs, 100, index_interval=1, created_ms=1_234
        )

    def test_layout_and_info(self):
        batches = b"".join(self.blobs)
        self.assertEqual(len(self.kfs), HEADER_SIZE + len(batches) + FOOTER_SIZE)
        self.assertEqual(self.kfs[:4], b"KAFS")
        self.assertEqual(
            struct.unpack(">4sHHqiqI", self.kfs[:HEADER_SIZE]),
            (b"KAFS", 1, 0, 100, 13, 1_234, 0),
        )
        self.assertEqual(self.kfs[HEADER_SIZE:-FOOTER_SIZE], batches)
        self.assertEqual(self.kfs[-4:], b"END!")
        self.assertEqual(struct.unpack(">q", self.kfs[-12:-4])[0], 112)
        self.assertEqual(
            self.info,
            SegmentInfo(100, 112, 1_700_000_000_000 + 5000 + 20, len(self.kfs), 13),
        )

    def test_reader_returns_what_was_written(self):
        segment = read_segment(self.kfs, KEY)
        self.assertEqual(
            (segment.base_offset, segment.last_offset, segment.count, segment.created_ms),
            (100, 112, 13, 1_234),
        )
        self.assertEqual(segment.max_timestamp, self.info.max_timestamp)
        self.assertEqual(segment.size, len(self.kfs))
        self.assertEqual(bytes(segment.batches), b"".join(self.blobs))
        offsets = [
            record.offset
            for info in iter_batches(segment.batches)
            for record in DefaultRecordBatch(
                bytes(segment.batches[info.position : info.position + info.size])
            )
        ]
        self.assertEqual(offsets, list(range(100, 113)))

    def test_segment_read_gives_whole_batches(self):
        segment = read_segment(self.kfs, KEY)
        view = segment.read(104, 1_000_000)
        self.assertEqual([b.base_offset for b in iter_batches(view)], [103, 108, 109, 110])
        self.assertEqual(len(segment.read(113, 1_000_000)), 0)

    def test_index_entries_point_at_batches(self):
        index = read_index(self.index, INDEX_KEY)
        self.assertEqual(index.interval, 1)
        self.assertEqual(index.offsets, [100, 102, 103, 108, 109, 110])
        for offset, position in zip(index.offsets, index.positions):
            self.assertEqual(struct.unpack_from(">q", self.kfs, position)[0], offset)
        self.assertEqual(len(self.index), INDEX_HEADER_SIZE + 12 * 6)
        self.assertEqual(self.index[:4], b"IDX\0")

    def test_index_interval_spaces_entries(self):
        blobs = produced_blobs(0, [[1] * 40])
        kfs, index_bytes, _ = build_segment(blobs, 0, index_interval=300)
        index = read_index(index_bytes, INDEX_KEY)
        self.assertEqual(index.positions[0], HEADER_SIZE)
        self.assertGreater(len(index.positions), 3)
        self.assertLess(len(index.positions), 40)
        starts = [HEADER_SIZE + b.position for b in iter_batches(b"".join(blobs))]
        largest = max(b.size for b in iter_batches(b"".join(blobs)))
        for earlier, later in zip(index.positions, index.positions[1:]):
            self.assertGreaterEqual(later - earlier, 300)
            self.assertLess(later - earlier, 300 + largest)
            self.assertIn(later, starts)

    def test_one_entry_when_the_interval_is_large(self):
        _, index_bytes, _ = build_segment(self.blobs, 100, index_interval=1 << 30)
        self.assertEqual(read_index(index_bytes, INDEX_KEY).offsets, [100])

    def test_writer_refuses_bad_input(self):
        with self.assertRaises(ValueError):
            build_segment([], 0)
        with self.assertRaises(ValueError):
            build_segment(self.blobs, 99)
        with self.assertRaises(ValueError):
            build_segment([self.blobs[0], self.blobs[2]], 100)
        with self.assertRaises(ValueError):
            build_segment(self.blobs, 100, index_interval=0)


class CorruptionTests(unittest.TestCase):
    def setUp(self):
        self.kfs, self.index, _ = build_segment(produced_blobs(7, [[2], [1, 3]]), 7)

    def assertCorrupt(self, data, fragment):
        with self.assertRaises(CorruptSegment) as caught:
            read_segment(data, KEY)
        self.assertEqual(caught.exception.key, KEY)
        self.assertIn(KEY, str(caught.exception))
        self.assertIn(fragment, str(caught.exception))

    def test_truncated(self):
        self.assertCorrupt(self.kfs[:-1], "footer magic")
        self.assertCorrupt(self.kfs[:-FOOTER_SIZE], "footer magic")
        self.assertCorrupt(self.kfs[:40], "shorter than header and footer")
        self.assertCorrupt(b"", "shorter than header and footer")
        # Cut in the middle and glue the footer back: caught by the CRC.
        self.assertCorrupt(self.kfs[:100] + self.kfs[-FOOTER_SIZE:], "CRC-32C")

    def test_every_bit_flip_outside_unchecked_fields_is_caught(self):
        # flags (6-7), created ms (20-27) and reserved (28-31) carry no invariant.
        unchecked = set(range(6, 8)) | set(range(20, 32))
        for position in range(len(self.kfs)):
            if position in unchecked:
                continue
            for bit in (0x01, 0x80):
                damaged = bytearray(self.kfs)
                damaged[position] ^= bit
                with self.assertRaises(CorruptSegment, msg=f"byte {position} bit {bit}"):
                    read_segment(bytes(damaged), KEY)

    def test_named_checks(self):
        damaged = bytearray(self.kfs)
        damaged[0:4] = b"KAFZ"
        self.assertCorrupt(bytes(damaged), "header magic")
        damaged = bytearray(self.kfs)
        struct.pack_into(">H", damaged, 4, 2)
        self.assertCorrupt(bytes(damaged), "unknown version 2")
        damaged = bytearray(self.kfs)
        struct.pack_into(">q", damaged, 8, 8)
        self.assertCorrupt(bytes(damaged), "expected 8")
        damaged = bytearray(self.kfs)
        struct.pack_into(">i", damaged, 16, 5)
        self.assertCorrupt(bytes(damaged), "header counts 5 records, batches hold 6")
        damaged = bytearray(self.kfs)
        struct.pack_into(">q", damaged, len(damaged) - 12, 99)
        self.assertCorrupt(bytes(damaged), "footer last offset 99")

    def test_bad_index(self):
        def assertCorruptIndex(data, fragment):
            with self.assertRaises(CorruptSegment) as caught:
                read_index(data, INDEX_KEY)
            self.assertIn(INDEX_KEY, str(caught.exception))
            self.assertIn(fragment, str(caught.exception))

        assertCorruptIndex(self.index[:-1], "entries in")
        assertCorruptIndex(self.index[:10], "shorter than its header")
        assertCorruptIndex(self.index[:16], "declares 1 entries in 16 bytes")
        assertCorruptIndex(struct.pack(">4sHiiH", b"IDX\0", 1, -1, 4096, 0), "declares -1 entries")
        assertCorruptIndex(b"IDX1" + self.index[4:], "index magic")
        two_entries = build_segment(produced_blobs(7, [[2], [1, 3]]), 7, index_interval=1)[1]
        swapped = two_entries[:16] + two_entries[28:40] + two_entries[16:28] + two_entries[40:]
        assertCorruptIndex(swapped, "out of order")


class RangedReadTests(unittest.TestCase):
    def setUp(self):
        self.blobs = produced_blobs(1000, [[1, 2, 1], [3], [1] * 12, [2, 2]])
        self.kfs, index_bytes, self.info = build_segment(self.blobs, 1000, index_interval=200)
        self.index = read_index(index_bytes, INDEX_KEY)
        self.segment = read_segment(self.kfs, KEY)

    def test_ranged_read_equals_whole_object_read(self):
        for offset in range(995, self.info.last_offset + 2):
            for max_bytes in (0, 1, 100, 250, 700, 5000):
                start, end = self.index.byte_range(offset, max_bytes, self.info.size)
                self.assertTrue(HEADER_SIZE <= start <= end <= self.info.size - FOOTER_SIZE)
                got = read_range(self.kfs[start:end], KEY, offset, max_bytes)
                want = self.segment.read(offset, max_bytes)
                self.assertEqual(bytes(got), bytes(want), f"offset {offset} max {max_bytes}")

    def test_position_is_at_or_before_the_batch(self):
        for offset in range(1000, self.info.last_offset + 1):
            position = self.index.position(offset)
            self.assertLessEqual(struct.unpack_from(">q", self.kfs, position)[0], offset)

    def test_damaged_range_is_corrupt(self):
        start, end = self.index.byte_range(1000, 5000, self.info.size)
        damaged = bytearray(self.kfs[start:end])
        damaged[-3] ^= 0x10
        with self.assertRaises(CorruptSegment) as caught:
            read_range(bytes(damaged), KEY, 1000, 5000)
        self.assertIn("CRC-32C", str(caught.exception))
        with self.assertRaises(CorruptSegment):
            read_range(self.kfs[start : end - 1], KEY, 1000, 5000)
