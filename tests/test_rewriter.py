"""What topic configs ask of produced batches, and the queue that rewrites
them one at a time, in order."""

from twisted.internet.defer import gatherResults
from twisted.trial import unittest

from kafscale.protocol.records import Compression, iter_batches
from kafscale.rewriter import BatchRewriter, Rewrite, rewrite_for
from tests.support.records import build_batch


class RewriteForTests(unittest.TestCase):
    def test_what_each_config_asks(self):
        self.assertIsNone(rewrite_for({}, 5))
        self.assertIsNone(rewrite_for({"compression.type": "producer", "message.timestamp.type": "CreateTime"}, 5))
        self.assertEqual(rewrite_for({"message.timestamp.type": "LogAppendTime"}, 5), Rewrite(None, None, 5))
        self.assertEqual(rewrite_for({"compression.type": "zstd"}, 5), Rewrite(Compression.ZSTD, 3, None))
        self.assertEqual(rewrite_for({"compression.type": "gzip", "compression.gzip.level": "9"}, 5),
                         Rewrite(Compression.GZIP, 9, None))
        self.assertEqual(rewrite_for({"compression.type": "snappy", "message.timestamp.type": "LogAppendTime"}, 5),
                         Rewrite(Compression.SNAPPY, None, 5))
        self.assertEqual(rewrite_for({"compression.type": "uncompressed"}, 5), Rewrite(Compression.NONE, None, None))


class BatchRewriterTests(unittest.TestCase):
    async def test_batches_come_back_in_the_order_asked(self):
        rewriter = BatchRewriter()
        finished = []
        blobs = [build_batch([(b"k", b"x" * size, [])]) for size in (200_000, 10, 50_000, 1)]
        rewrites = []
        for index, blob in enumerate(blobs):
            (info,) = iter_batches(blob)
            rewrite = rewriter.rewrite(blob, info, Rewrite(Compression.GZIP, 9, 1_700_000_000_000 + index))
            rewrites.append(rewrite.addCallback(lambda result, index=index: finished.append(index) or result))
        results = await gatherResults(rewrites)
        self.assertEqual(finished, [0, 1, 2, 3])
        for index, result in enumerate(results):
            (info,) = iter_batches(result)
            self.assertEqual((info.compression, info.max_timestamp), (Compression.GZIP, 1_700_000_000_000 + index))
