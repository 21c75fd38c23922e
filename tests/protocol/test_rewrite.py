"""Batches rewritten as a Kafka broker rewrites them: each codec's output
decoded by kafka-python (an independent decoder), the stamp where clients
read it, the producer's fields kept."""

from kafka.record.default_records import DefaultRecordBatch
from twisted.trial import unittest

from kafscale.protocol.records import Compression, InvalidRecords, decode_records, iter_batches
from kafscale.protocol.rewrite import rewrite_batch
from tests.support.records import build_batch

RECORDS = [(b"k%d" % i, b"value %d " % i * 30, [("h", b"%d" % i)]) for i in range(20)]


def client_view(blob):
    """What kafka-python's consumer makes of a batch."""
    batch = DefaultRecordBatch(blob)
    return batch.compression_type, batch.timestamp_type, [(r.offset, r.timestamp, r.key, r.value, r.headers)
                                                          for r in batch]


class RewriteBatchTests(unittest.TestCase):
    def test_every_codec_to_every_codec(self):
        for source in Compression:
            blob = build_batch(RECORDS, compression=source, producer=(7, 2, 40))
            (info,) = iter_batches(blob)
            _, _, expected = client_view(blob)
            for target in Compression:
                rewritten = rewrite_batch(blob, info, codec=target)
                (new,) = iter_batches(rewritten)  # the CRC holds
                self.assertEqual(client_view(rewritten), (target, 0, expected), (source, target))
                self.assertEqual((new.producer_id, new.producer_epoch, new.base_sequence, new.record_count,
                                  new.first_timestamp, new.max_timestamp),
                                 (7, 2, 40, 20, info.first_timestamp, info.max_timestamp))

    def test_log_append_time_replaces_every_records_timestamp(self):
        blob = build_batch(RECORDS, compression=Compression.LZ4, first_timestamp=1_000)
        (info,) = iter_batches(blob)
        stamped = rewrite_batch(blob, info, log_append_time=1_700_000_123_456)
        (new,) = iter_batches(stamped)
        self.assertTrue(new.log_append_time)
        self.assertEqual((new.first_timestamp, new.max_timestamp), (1_000, 1_700_000_123_456))
        # Stamping alone leaves the records' bytes as they were.
        self.assertEqual(stamped[61:], blob[61:])
        codec, timestamp_type, records = client_view(stamped)
        self.assertEqual((codec, timestamp_type), (Compression.LZ4, 1))
        self.assertEqual({timestamp for _, timestamp, *_ in records}, {1_700_000_123_456})
        self.assertEqual({r.timestamp for r in decode_records(stamped)}, {1_700_000_123_456})

    def test_the_same_codec_is_not_recompressed(self):
        blob = build_batch(RECORDS, compression=Compression.ZSTD)
        (info,) = iter_batches(blob)
        self.assertEqual(rewrite_batch(blob, info, codec=Compression.ZSTD), blob)

    def test_levels_change_the_output_not_the_records(self):
        blob = build_batch(RECORDS)
        (info,) = iter_batches(blob)
        fast = rewrite_batch(blob, info, codec=Compression.ZSTD, level=1)
        small = rewrite_batch(blob, info, codec=Compression.ZSTD, level=19)
        self.assertNotEqual(fast, small)
        self.assertEqual(client_view(fast), client_view(small))

    def test_a_body_that_does_not_decompress(self):
        blob = bytearray(build_batch(RECORDS, compression=Compression.GZIP))
        blob[80:90] = b"\xff" * 10
        (info,) = iter_batches(blob, verify_crc=False)
        with self.assertRaises(InvalidRecords):
            rewrite_batch(blob, info, codec=Compression.ZSTD)
