"""A batch's records read whole and written anew, for every codec: offsets,
producer fields and timestamps as they were, checked by kafka-python's own
decoder."""

from kafka.record.default_records import DefaultRecordBatch
from twisted.trial import unittest

from kafscale.protocol.batches import keyless_record, read_records, rewrite_batch
from kafscale.protocol.records import DELETE_HORIZON_MASK, Compression, InvalidRecords, iter_batches
from tests.support.records import build_batch

RECORDS = [(b"a", b"1", [("h", b"x")]), (None, b"2", []), (b"c", None, []), (b"d", b"4" * 300, [])]


class RewriteTests(unittest.SynchronousTestCase):
    def test_every_codec_keeps_offsets_producer_and_timestamps(self):
        for codec in Compression:
            blob = build_batch(RECORDS, compression=codec, producer=(9, 2, 40))
            (info,) = iter_batches(blob)
            records = read_records(blob, info)
            self.assertEqual([(r.offset_delta, r.key, r.tombstone) for r in records],
                             [(0, b"a", False), (1, None, False), (2, b"c", True), (3, b"d", False)])
            horizon = 1_900_000_000_000
            kept = rewrite_batch(info, [records[0], records[2]], info.attributes | DELETE_HORIZON_MASK, horizon)
            (new,) = iter_batches(kept, compacted=True)
            self.assertEqual((new.base_offset, new.last_offset_delta, new.record_count, new.producer_id,
                              new.producer_epoch, new.base_sequence, new.compression),
                             (info.base_offset, 3, 2, 9, 2, 40, codec))
            decoded = DefaultRecordBatch(kept)
            self.assertEqual(decoded.first_timestamp, horizon)
            self.assertEqual([(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decoded], [
                (0, 1_700_000_000_000, b"a", b"1", [("h", b"x")]), (2, 1_700_000_000_020, b"c", None, [])])

    def test_a_batch_without_records_keeps_its_header_uncompressed(self):
        blob = build_batch(RECORDS, compression=Compression.ZSTD, producer=(9, 2, 40))
        (info,) = iter_batches(blob)
        (empty,) = iter_batches(rewrite_batch(info, [], info.attributes, info.first_timestamp), compacted=True)
        self.assertEqual((empty.record_count, empty.last_offset_delta, empty.compression, empty.max_timestamp),
                         (0, 3, Compression.NONE, info.max_timestamp))
        # A stored batch that lost records is refused where produce checks.
        with self.assertRaises(InvalidRecords):
            list(iter_batches(rewrite_batch(info, [], info.attributes, 0)))

    def test_keyless_record(self):
        blob = build_batch(RECORDS, compression=Compression.LZ4)
        self.assertEqual(keyless_record(blob, next(iter_batches(blob))), 1)
        keyed = build_batch(RECORDS[:1])
        self.assertIsNone(keyless_record(keyed, next(iter_batches(keyed))))
