"""Format-2 objects: one per flush, a slice per partition, a directory."""

import uuid

from twisted.trial import unittest

from kafscale.metadata.topic_configs import TOPIC_NAME
from kafscale.protocol.records import iter_batches
from kafscale.storage.object_format import (
    OBJECT_FOOTER_SIZE,
    OBJECT_HEADER_SIZE,
    OBJECTS_PREFIX,
    SliceBatches,
    build_object,
    is_object_key,
    object_key,
    object_version,
    read_directory,
    read_footer,
    read_object,
)
from kafscale.storage.segment import CorruptSegment, build_segment, read_segment
from tests.storage.test_segment import produced_blobs

ORDERS = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
EVENTS = uuid.UUID("11111111-2222-3333-4444-555555555555")
KEY = "~objects/1700000000000-3-00112233aabbccdd.kfs"


def flush():
    """A flush of three partitions of two topics."""
    return [
        SliceBatches("orders", ORDERS, 0, 100, produced_blobs(100, [[1, 2], [3]])),
        SliceBatches("orders", ORDERS, 5, 0, produced_blobs(0, [[1]])),
        SliceBatches("events", EVENTS, 2, 7, produced_blobs(7, [[4], [1, 1]])),
    ]


class ObjectTests(unittest.TestCase):
    def test_each_slice_is_the_segment_of_its_partition(self):
        slices = flush()
        data, directory = build_object(slices, created_ms=1_700_000_000_000)
        self.assertEqual([(s.topic, s.partition) for s in directory], [("orders", 0), ("orders", 5), ("events", 2)])
        self.assertEqual(directory[0].position, OBJECT_HEADER_SIZE)
        for batches, entry in zip(slices, directory):
            alone, _, info = build_segment(batches.blobs, batches.base_offset, created_ms=1_700_000_000_000)
            self.assertEqual(data[entry.position:entry.position + entry.size], alone)
            self.assertEqual((entry.base_offset, entry.last_offset, entry.count, entry.max_timestamp, entry.size),
                             (info.base_offset, info.last_offset, info.count, info.max_timestamp, info.size))
            segment = read_segment(memoryview(data)[entry.position:entry.position + entry.size], KEY, entry.position)
            self.assertEqual((segment.key, segment.position, segment.base_offset), (KEY, entry.position,
                                                                                   batches.base_offset))
            self.assertEqual([b.base_offset for b in iter_batches(segment.batches)],
                             [b.base_offset for blob in batches.blobs for b in iter_batches(blob)])

    def test_read_object_gives_the_directory(self):
        data, directory = build_object(flush(), created_ms=1_700_000_000_000)
        self.assertEqual(read_object(data, KEY), (1_700_000_000_000, directory))
        self.assertEqual(object_version(data), 2)

    def test_directory_from_the_tail_alone(self):
        data, directory = build_object(flush(), created_ms=1)
        position, length, crc = read_footer(data[-OBJECT_FOOTER_SIZE:], KEY, len(data))
        self.assertEqual(read_directory(data[position:position + length], KEY, crc), directory)

    def test_a_format_1_reader_refuses_it(self):
        data, _ = build_object(flush(), created_ms=1)
        with self.assertRaisesRegex(CorruptSegment, "unknown version 2"):
            read_segment(data, KEY)

    def test_damage_is_found(self):
        data, directory = build_object(flush(), created_ms=1)
        inside_slice = bytearray(data)
        inside_slice[directory[1].position + 40] ^= 1
        inside_directory = bytearray(data)
        inside_directory[-OBJECT_FOOTER_SIZE - 3] ^= 1
        for damaged, reason in [(inside_slice, "slice at byte"), (inside_directory, "directory CRC"),
                                (data[:-1], "footer magic"), (b"KAFS\x00\x01" + data[6:], "format 1")]:
            with self.assertRaisesRegex(CorruptSegment, reason):
                read_object(bytes(damaged), KEY)

    def test_damaged_slice_read_alone(self):
        data, directory = build_object(flush(), created_ms=1)
        entry = directory[2]
        damaged = bytearray(data[entry.position:entry.position + entry.size])
        damaged[-20] ^= 1
        with self.assertRaisesRegex(CorruptSegment, f"slice at byte {entry.position}"):
            read_segment(bytes(damaged), KEY, entry.position)


class KeyTests(unittest.TestCase):
    def test_keys_are_unique_and_outside_every_topic(self):
        first, second = object_key(3, 1_700_000_000_000), object_key(3, 1_700_000_000_000)
        self.assertNotEqual(first, second)
        self.assertTrue(first.startswith(OBJECTS_PREFIX + "1700000000000-3-"))
        self.assertTrue(is_object_key(first))
        self.assertIsNone(TOPIC_NAME.fullmatch(OBJECTS_PREFIX.rstrip("/")))
        self.assertFalse(is_object_key("orders/0f1e2d3c4b5a69788796a5b4c3d2e1f0/0/segment-0-1-0.kfs"))

    def test_keys_sort_by_creation_time(self):
        self.assertLess(object_key(9, 999_999_999_999), object_key(1, 1_000_000_000_000))
