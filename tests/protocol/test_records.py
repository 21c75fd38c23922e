"""RecordBatch v2 handling, checked against kafka-python's encoder and decoder."""

import random
import resource
import struct

from crc32c import crc32c
from kafka.record.default_records import DefaultRecordBatch
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.records import (
    BATCH_HEADER_SIZE,
    Compression,
    InvalidRecords,
    Record,
    assign_offsets,
    decode_records,
    iter_records,
    iter_batches,
    take_batches,
)
from tests.support.records import bomb_batch, build_batch, simple_batch


def rewrite(batch, position, fmt, value):
    """Overwrite a header field and recompute the CRC, as a buggy client would."""
    patched = bytearray(batch)
    struct.pack_into(fmt, patched, position, value)
    struct.pack_into(">I", patched, 17, crc32c(bytes(patched[21:])))
    return bytes(patched)


class IterBatchesTests(unittest.TestCase):
    def test_describes_each_batch(self):
        first = simple_batch(3)
        second = build_batch(
            [(None, b"x" * 500, [])] * 4,
            compression=Compression.GZIP,
            first_timestamp=1_800_000_000_000,
            producer=(77, 3, 1000),
        )
        blob = first + second
        infos = list(iter_batches(memoryview(blob)))
        self.assertEqual([i.position for i in infos], [0, len(first)])
        self.assertEqual([i.size for i in infos], [len(first), len(second)])
        self.assertEqual([i.record_count for i in infos], [3, 4])
        self.assertEqual([i.last_offset_delta for i in infos], [2, 3])
        self.assertEqual([i.compression for i in infos], [Compression.NONE, Compression.GZIP])
        self.assertEqual(infos[0].first_timestamp, 1_700_000_000_000)
        self.assertEqual(infos[0].max_timestamp, 1_700_000_000_020)
        self.assertEqual(infos[1].max_timestamp, 1_800_000_000_030)
        self.assertEqual(
            (infos[1].producer_id, infos[1].producer_epoch, infos[1].base_sequence),
            (77, 3, 1000),
        )
        self.assertEqual(infos[0].producer_id, -1)
        self.assertEqual(infos[0].base_offset, 0)
        self.assertFalse(infos[0].is_transactional or infos[0].is_control)
        self.assertFalse(infos[0].log_append_time)

    def test_empty_blob_has_no_batches(self):
        self.assertEqual(list(iter_batches(b"")), [])

    def assertInvalid(self, blob, code, fragment):
        with self.assertRaises(InvalidRecords) as caught:
            list(iter_batches(blob))
        self.assertEqual(caught.exception.code, code)
        self.assertIn(fragment, str(caught.exception))

    def test_flipped_bit_fails_the_crc(self):
        blob = bytearray(simple_batch(2) + simple_batch(2))
        blob[-5] ^= 0x01
        self.assertInvalid(bytes(blob), ErrorCode.CORRUPT_MESSAGE, "CRC-32C")

    def test_crc_is_not_checked_when_asked_not_to(self):
        blob = bytearray(simple_batch(2))
        blob[-5] ^= 0x01
        self.assertEqual(len(list(iter_batches(bytes(blob), verify_crc=False))), 1)

    def test_leader_epoch_is_outside_the_crc(self):
        blob = bytearray(simple_batch(2))
        struct.pack_into(">i", blob, 12, 41)
        (info,) = iter_batches(bytes(blob))
        self.assertEqual(info.partition_leader_epoch, 41)

    def test_trailing_partial_batch_is_corrupt(self):
        blob = simple_batch(2) + simple_batch(2)
        self.assertInvalid(blob[:-1], ErrorCode.CORRUPT_MESSAGE, "truncated batch at byte")
        self.assertInvalid(blob + blob[:30], ErrorCode.CORRUPT_MESSAGE, "truncated batch header")

    def test_length_shorter_than_a_header_is_corrupt(self):
        blob = bytearray(simple_batch(1))
        struct.pack_into(">i", blob, 8, 20)
        self.assertInvalid(bytes(blob), ErrorCode.CORRUPT_MESSAGE, "less than its header")

    def test_other_magic_is_corrupt(self):
        blob = bytearray(simple_batch(1))
        blob[16] = 1
        self.assertInvalid(bytes(blob), ErrorCode.CORRUPT_MESSAGE, "magic 1")

    def test_zero_records_is_invalid(self):
        blob = rewrite(simple_batch(1), 57, ">i", 0)
        self.assertInvalid(blob, ErrorCode.INVALID_RECORD, "holds 0 records")

    def test_count_must_match_last_offset_delta(self):
        blob = rewrite(simple_batch(3), 23, ">i", 5)
        self.assertInvalid(blob, ErrorCode.INVALID_RECORD, "last offset delta is 5")

    def test_unknown_codec_is_invalid(self):
        blob = rewrite(simple_batch(1), 21, ">h", 6)
        self.assertInvalid(blob, ErrorCode.INVALID_RECORD, "compression codec 6")


class AssignOffsetsTests(unittest.TestCase):
    def test_patches_consecutive_offsets_in_one_copy(self):
        blob = simple_batch(3) + simple_batch(1) + simple_batch(5)
        infos = list(iter_batches(blob))
        patched, next_offset = assign_offsets(memoryview(blob), infos, 1000)
        self.assertIsInstance(patched, bytearray)
        self.assertEqual(next_offset, 1009)
        patched_infos = list(iter_batches(patched))
        self.assertEqual([i.base_offset for i in patched_infos], [1000, 1003, 1004])
        self.assertEqual([i.base_offset for i in iter_batches(blob)], [0, 0, 0])
        # kafka-python's decoder sees the assigned offsets, and the CRC still holds.
        offsets = []
        for info in patched_infos:
            batch = DefaultRecordBatch(patched[info.position : info.position + info.size])
            self.assertTrue(batch.validate_crc())
            offsets.extend(record.offset for record in batch)
        self.assertEqual(offsets, list(range(1000, 1009)))

    def test_stamps_the_leader_epoch_when_given(self):
        blob = simple_batch(1) + simple_batch(1)
        patched, _ = assign_offsets(blob, list(iter_batches(blob)), 0, leader_epoch=7)
        self.assertEqual([i.partition_leader_epoch for i in iter_batches(patched)], [7, 7])


class TakeBatchesTests(unittest.TestCase):
    def setUp(self):
        self.parts = [simple_batch(2), simple_batch(3), simple_batch(1), simple_batch(4)]
        self.blob, _ = assign_offsets(
            b"".join(self.parts), list(iter_batches(b"".join(self.parts))), 50
        )
        self.sizes = [len(part) for part in self.parts]
        # Offsets: [50, 51] [52, 53, 54] [55] [56..59]

    def offsets_of(self, view):
        return [info.base_offset for info in iter_batches(view)]

    def test_starts_at_the_batch_holding_the_offset(self):
        self.assertEqual(self.offsets_of(take_batches(self.blob, 53, 10_000)), [52, 55, 56])
        self.assertEqual(self.offsets_of(take_batches(self.blob, 0, 10_000)), [50, 52, 55, 56])
        self.assertEqual(self.offsets_of(take_batches(self.blob, 59, 10_000)), [56])

    def test_beyond_the_end_is_empty(self):
        self.assertEqual(len(take_batches(self.blob, 60, 10_000)), 0)

    def test_stops_before_exceeding_max_bytes(self):
        exact = self.sizes[1] + self.sizes[2]
        self.assertEqual(self.offsets_of(take_batches(self.blob, 52, exact)), [52, 55])
        self.assertEqual(self.offsets_of(take_batches(self.blob, 52, exact - 1)), [52])

    def test_first_batch_even_when_larger_than_max_bytes(self):
        self.assertEqual(self.offsets_of(take_batches(self.blob, 52, 10)), [52])
        self.assertEqual(len(take_batches(self.blob, 52, 10, min_one=False)), 0)

    def test_returns_a_slice_not_a_copy(self):
        view = take_batches(self.blob, 55, 10_000)
        self.assertIsInstance(view, memoryview)
        self.assertEqual(view.obj, self.blob)

    def test_partial_batch_is_corrupt(self):
        with self.assertRaises(InvalidRecords) as caught:
            take_batches(self.blob[:-3], 50, 10_000)
        self.assertEqual(caught.exception.code, ErrorCode.CORRUPT_MESSAGE)


class DecodeRecordsTests(unittest.TestCase):
    def test_decodes_keys_values_headers_and_timestamps(self):
        batch = build_batch(
            [
                (b"key", b"value", [("h1", b"x"), ("h2", None)]),
                (None, None, []),
                (b"", b"\x00" * 300, [("", b"")]),
            ]
        )
        patched, _ = assign_offsets(batch, list(iter_batches(batch)), 10)
        self.assertEqual(
            decode_records(memoryview(patched)),
            [
                Record(10, 1_700_000_000_000, b"key", b"value", [("h1", b"x"), ("h2", None)]),
                Record(11, 1_700_000_000_010, None, None, []),
                Record(12, 1_700_000_000_020, b"", b"\x00" * 300, [("", b"")]),
            ],
        )

    def test_every_codec_matches_kafka_python(self):
        rng = random.Random(7)
        records = [
            (
                bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 20))),
                b"payload %d " % i * rng.randrange(1, 40),
                [("n", b"%d" % i)] * rng.randrange(0, 3),
            )
            for i in range(200)
        ]
        for codec in Compression:
            batch = build_batch(records, compression=codec)
            (info,) = iter_batches(batch)
            self.assertEqual(info.compression, codec, "kafka-python did not compress")
            expected = [
                Record(r.offset, r.timestamp, r.key, r.value, list(r.headers))
                for r in DefaultRecordBatch(batch)
            ]
            self.assertEqual(decode_records(batch), expected, codec.name)

    def test_log_append_time_uses_the_batch_max_timestamp(self):
        batch = rewrite(simple_batch(2), 21, ">h", 0x08)
        self.assertEqual(
            [record.timestamp for record in decode_records(batch)],
            [1_700_000_000_010, 1_700_000_000_010],
        )

    def test_garbled_compressed_payload_is_corrupt(self):
        for codec in (Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD):
            batch = bytearray(build_batch([(None, b"abc" * 100, [])] * 3, compression=codec))
            for position in range(BATCH_HEADER_SIZE + 4, len(batch), 3):
                batch[position] ^= 0x5A
            struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
            with self.assertRaises(InvalidRecords, msg=codec.name) as caught:
                decode_records(bytes(batch))
            self.assertEqual(caught.exception.code, ErrorCode.CORRUPT_MESSAGE)

    def test_record_count_larger_than_the_records_is_corrupt(self):
        batch = rewrite(rewrite(simple_batch(2), 57, ">i", 3), 23, ">i", 2)
        with self.assertRaises(InvalidRecords) as caught:
            decode_records(batch)
        self.assertEqual(caught.exception.code, ErrorCode.CORRUPT_MESSAGE)

    def test_a_batch_expanding_past_the_bound_is_refused_unexpanded(self):
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with self.assertRaises(InvalidRecords) as caught:
            list(iter_records(bomb_batch(256 << 20), with_data=False))
        self.assertEqual(caught.exception.code, ErrorCode.CORRUPT_MESSAGE)
        self.assertIn("expands past", str(caught.exception))
        self.assertLess(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before, 64 << 10)

    def test_records_are_decoded_as_they_are_decompressed(self):
        batch = bomb_batch(8 << 20)
        self.assertEqual([(r.offset, r.timestamp, r.value) for r in iter_records(batch, with_data=False)],
                         [(0, 1_700_000_000_000, None), (1, 1_700_000_000_010, None)])
        self.assertEqual([len(r.value) for r in decode_records(batch)], [8 << 20, 1])
        with self.assertRaises(InvalidRecords):
            list(iter_records(batch, max_size=4 << 20))

    def test_takes_exactly_one_batch(self):
        with self.assertRaises(ValueError):
            decode_records(simple_batch(1) + simple_batch(1))
