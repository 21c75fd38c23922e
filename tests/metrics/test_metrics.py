"""The broker's metrics against a running broker and real clients: the
counters move by exactly what was produced, stored and fetched, and the
object store's by exactly the requests S3 (moto) received."""

import json
import urllib.parse
import urllib.request
from collections import Counter

from twisted.trial import unittest

from kafscale.metrics import batches_in
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import admin_url, in_thread, s3_args, start_broker
from tests.support.clients import consume, produce
from tests.support.metrics import scrape
from tests.support.records import simple_batch
from tests.support.s3_server import s3_server
from tests.support.topics import create_topic
from tests.support.waiting import eventually
from tests.support.wire import Connection


def _recorder(server, action):
    request = urllib.request.Request(f"{server.endpoint}/moto-api/recorder/{action}", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5) as reply:
        return reply.read().decode()


def _download(server):
    with urllib.request.urlopen(f"{server.endpoint}/moto-api/recorder/download-recording", timeout=5) as reply:
        return reply.read().decode()


def _s3_operation(method, url, bucket):
    """S3's name for a request moto recorded, or None for another bucket's."""
    parsed = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parsed.path).lstrip("/")
    if path.split("/", 1)[0] != bucket:
        return None
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    on_bucket = "/" not in path.rstrip("/")
    if method == "PUT":
        return "CreateBucket" if on_bucket else "UploadPart" if "partNumber" in query else "PutObject"
    if method == "GET":
        return "ListObjectsV2" if on_bucket else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    return method


class BatchCountingTests(unittest.TestCase):
    def test_whole_batches_only(self):
        first, second = simple_batch(3), simple_batch(5)
        self.assertEqual(batches_in(first + second), (8, len(first) + len(second)))
        # A fetch answer cut inside its last batch: that batch is not counted.
        self.assertEqual(batches_in(first + second[:-1]), (3, len(first)))
        self.assertEqual(batches_in(b""), (0, 0))


class BrokerMetricsTests(unittest.TestCase):
    async def test_counters_move_by_what_was_produced_stored_and_fetched(self):
        server = s3_server()
        args = await s3_args(self)
        bucket = args[args.index("--s3-bucket") + 1]
        _recorder(server, "start-recording")
        self.addCleanup(_recorder, server, "stop-recording")
        # No segment cache: every read is a GET, and a miss.
        broker, bootstrap = await start_broker(self, *args, "--cache-bytes", "0")
        url = admin_url(broker)
        await create_topic(bootstrap, "counted", 1)
        before = await scrape(url)

        await in_thread(produce, bootstrap, "counted", [(None, b"value-%d" % i, None, 0) for i in range(60)])
        stored = await broker.metadata.partition_state("counted", 0)
        stored_bytes = sum(ref.size for ref in stored.segments)
        after = await scrape(url)
        self.assertEqual(after.total("kafscale_produced_records_total")
                         - before.total("kafscale_produced_records_total"), 60)
        produced_bytes = after.total("kafscale_produced_bytes_total") - before.total("kafscale_produced_bytes_total")
        # The batches as produced; the stored slices add their framing.
        self.assertTrue(0 < produced_bytes <= stored_bytes, (produced_bytes, stored_bytes))
        self.assertEqual(after.total("kafscale_produce_ack_seconds_count")
                         - before.total("kafscale_produce_ack_seconds_count"),
                         after.total("kafscale_request_seconds_count", api="produce")
                         - before.total("kafscale_request_seconds_count", api="produce"))
        self.assertGreater(after.total("kafscale_flush_upload_seconds_count"), 0)

        messages = await in_thread(consume, bootstrap, "counted", [0], 60)
        self.assertEqual(len(messages), 60)
        fetched = await scrape(url)
        self.assertEqual(fetched.total("kafscale_fetched_records_total"), 60)
        self.assertEqual(fetched.total("kafscale_fetched_bytes_total"), produced_bytes)
        self.assertGreater(fetched.total("kafscale_segment_cache_lookups_total", result="miss"), 0)
        self.assertEqual(fetched.total("kafscale_segment_cache_read_bytes_total", result="miss"),
                         fetched.total("kafscale_object_store_received_bytes_total", operation="GetObject"))

        # Exactly one more Metadata request, and an error counted per partition.
        def ask():
            connection = Connection(bootstrap)
            try:
                connection.request(ApiKey.METADATA, 9, {"topics": [{"name": "counted"}],
                                                        "allow_auto_topic_creation": False,
                                                        "include_topic_authorized_operations": False})
                return connection.request(ApiKey.PRODUCE, 9, {
                    "transactional_id": None, "acks": -1, "timeout_ms": 5000,
                    "topic_data": [{"name": "counted", "partition_data": [
                        {"index": 7, "records": simple_batch(1)}, {"index": 8, "records": simple_batch(1)}]}]})
            finally:
                connection.close()

        before = await scrape(url)
        await in_thread(ask)
        after = await scrape(url)
        self.assertEqual(after.total("kafscale_requests_total", api="metadata")
                         - before.total("kafscale_requests_total", api="metadata"), 1)
        self.assertEqual(after.total("kafscale_request_errors_total", api="produce",
                                     error="UNKNOWN_TOPIC_OR_PARTITION")
                         - before.total("kafscale_request_errors_total", api="produce",
                                        error="UNKNOWN_TOPIC_OR_PARTITION"), 2)
        self.assertEqual(after.total("kafscale_partitions_owned"), 1)
        self.assertEqual(after.total("kafscale_connections"), 0)

        # The object store counters against the requests moto received.
        async def same_as_moto():
            samples = await scrape(url)
            counted = {operation: int(value) for operation, value
                       in samples.by("kafscale_object_store_requests_total", "operation").items() if value}
            recorded = Counter()
            for line in _download(server).splitlines():
                entry = json.loads(line)
                operation = _s3_operation(entry["method"], entry["url"], bucket)
                if operation is not None:
                    recorded[operation] += 1
            same_as_moto.last = (counted, dict(recorded))
            return counted == dict(recorded) and counted.get("PutObject", 0) and counted.get("GetObject", 0)

        await eventually(same_as_moto, what="object store requests as moto recorded them")
        samples = await scrape(url)
        self.assertGreaterEqual(samples.total("kafscale_object_store_sent_bytes_total", operation="PutObject"),
                                stored_bytes)
