"""What storage costs on S3 (a moto server): PUTs per second and per GB
written, and produce latency, at 1, 100 and 1,000 partitions, for each
flush setting; produce and catch-up throughput.

    PYTHONPATH=. python bench/storage_cost.py [--seconds 8] [--settings group,window]
        [--partitions 1,100,1000] [--source DIR]

PUTs are counted from moto's request log (one line per request), so they
include every PUT the broker makes, multipart parts too. The load is
confluent-kafka, acks=all, 1 KiB records, linger.ms=50, offered at 1 MB/s
spread round-robin over the topic's partitions; latency is from produce()
to the delivery report. ``--source`` runs the broker from another checkout
(to measure before and after): "window" needs --flush-interval-ms, "linger"
the per-partition --flush-linger-ms of brokers before shared objects.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Producer

from bench.data_path import Broker, catch_up, create_topic, percentiles, produce_latency, show, throughput, \
    wait_for_port
from tests.support.brokers import free_port

SETTINGS = {
    "group": [],
    "window": ["--flush-interval-ms", "250"],
    # Before shared objects: each partition lingered on its own.
    "linger": ["--flush-linger-ms", "250"],
}

# S3 list price of a PUT (USD), and seconds in a 30-day month.
PUT_PRICE = 0.005 / 1000
MONTH = 30 * 86400

_PUT = re.compile(rb'"PUT ')


class CountingS3Broker(Broker):
    """A broker on a fresh moto server whose request log is kept, to count
    PUTs."""

    def __init__(self, args, source):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="kafscale-bench-")
        self.env = dict(os.environ, PYTHONPATH=source, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        moto_port = free_port()
        self.moto_log = os.path.join(self.data_dir, "moto.log")
        self.moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(moto_port)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.moto_log, "wb"))
        wait_for_port(moto_port, self.moto)
        endpoint = f"http://127.0.0.1:{moto_port}"
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench")
        client.create_bucket(Bucket=bucket)
        self.args = ["--s3-bucket", bucket, "--s3-endpoint", endpoint, "--s3-region", "us-east-1", *args]
        self._start_process()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def puts(self):
        with open(self.moto_log, "rb") as log:
            return len(_PUT.findall(log.read()))


def offered_load(broker, partitions, seconds, rate_bytes=1_000_000, size=1024):
    """Produce ``rate_bytes``/s of ``size``-byte records over ``partitions``
    partitions for ``seconds``: -> PUTs/s, PUTs per GB, MB/s acked and the
    produce latency percentiles."""
    topic = f"cost-{partitions}-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 50,
                         "queue.buffering.max.messages": 1_000_000})
    # Metadata for every partition first, so the timed part only produces.
    producer.produce(topic, b"warm-up", partition=0)
    producer.flush(30)
    time.sleep(0.5)
    payload = os.urandom(size)
    per_second = rate_bytes // size
    latencies = []
    acked = [0]

    def delivery(at):
        def delivered(error, message):
            if error is None:
                acked[0] += 1
                latencies.append((time.monotonic() - at) * 1000)

        return delivered

    puts_before = broker.puts()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * per_second)
        while sent < due:
            producer.produce(topic, payload, partition=sent % partitions, on_delivery=delivery(time.monotonic()))
            sent += 1
        producer.poll(0.002)
    producer.flush(60)
    elapsed = time.monotonic() - started
    puts = broker.puts() - puts_before
    megabytes = acked[0] * size / 1e6
    figures = {"PUTs/s": puts / elapsed, "PUTs/GB": puts / (megabytes / 1000), "MB/s": megabytes / elapsed}
    figures.update(percentiles(latencies))
    figures["$/month PUTs"] = puts / elapsed * MONTH * PUT_PRICE
    return figures


def run(setting, partition_counts, seconds, source):
    print(f"S3 (moto), {setting}: {' '.join(SETTINGS[setting]) or 'group commit'}", flush=True)
    broker = CountingS3Broker(SETTINGS[setting], source)
    try:
        for partitions in partition_counts:
            show(f"1 MB/s over {partitions} partitions", offered_load(broker, partitions, seconds))
        show("produce latency @20/s", produce_latency(broker))
        topic, count, figures = throughput(broker, 1024, seconds)
        show("produce 1 KiB, 3 partitions", figures)
        broker.restart()
        show("catch-up 1 KiB, from store", catch_up(broker, topic, count))
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--settings", default="group,window")
    parser.add_argument("--partitions", default="1,100,1000")
    parser.add_argument("--source", default=os.getcwd(), help="the kafscale checkout the broker runs from")
    args = parser.parse_args()
    partition_counts = [int(p) for p in args.partitions.split(",")]
    for setting in args.settings.split(","):
        run(setting, partition_counts, args.seconds, os.path.abspath(args.source))


if __name__ == "__main__":
    main()
