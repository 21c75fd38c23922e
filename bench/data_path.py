"""Produce and fetch figures with confluent-kafka against a real broker
process, on the local-directory store and on S3 (a moto server).

    PYTHONPATH=. python bench/data_path.py [--store local|s3|both] [--seconds 8]

Client, broker and moto share this machine's cores, so the figures are a
floor for what a broker alone would do. The broker's CPU use is read from
/proc while each phase runs.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.brokers import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def wait_for_port(port, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listened on {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Broker:
    def __init__(self, store):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="kafscale-bench-")
        self.env = dict(os.environ, PYTHONPATH=os.getcwd())
        self.moto = None
        args = []
        if store == "s3":
            moto_port = free_port()
            self.moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(moto_port)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(moto_port, self.moto)
            endpoint = f"http://127.0.0.1:{moto_port}"
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            import botocore.session

            client = botocore.session.get_session().create_client(
                "s3", endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="bench", aws_secret_access_key="bench")
            client.create_bucket(Bucket=bucket)
            self.env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
            args = ["--s3-bucket", bucket, "--s3-endpoint", endpoint, "--s3-region", "us-east-1"]
        self.args = args
        self._start_process()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _start_process(self):
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "kafscale", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
             "--data-dir", self.data_dir, "--log-level", "warn", *self.args],
            stdout=open(os.path.join(self.data_dir, "broker.log"), "ab"), stderr=subprocess.STDOUT, env=self.env)
        wait_for_port(self.port, self.process)

    def cpu(self):
        return cpu_seconds(self.process.pid)

    def restart(self):
        """Stop and start the broker process alone: its segment cache is
        then empty, so reads come from the object store."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self._start_process()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        if self.moto is not None:
            self.moto.kill()
            self.moto.wait()


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions)])[name].result(30)


def produce_for(producer, topic, payload, seconds, partitions=3):
    """Produce ``payload`` round-robin over ``partitions`` as fast as
    ``producer`` takes it for ``seconds``, then flush. -> (records
    acknowledged, seconds taken)."""
    acked = [0]

    def delivered(error, message):
        if error is None:
            acked[0] += 1

    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        try:
            producer.produce(topic, payload, partition=sent % partitions, on_delivery=delivered)
            sent += 1
        except BufferError:
            producer.poll(0.001)
        if sent % 1000 == 0:
            producer.poll(0)
    producer.flush(120)
    return acked[0], time.monotonic() - started


def throughput(broker, size, seconds):
    topic = f"throughput-{size}"
    create_topic(broker.bootstrap, topic, 3)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                         "batch.size": 1 << 20, "message.max.bytes": 2 << 20,
                         "queue.buffering.max.kbytes": 256 << 10})
    cpu_before = broker.cpu()
    acked, elapsed = produce_for(producer, topic, os.urandom(size), seconds)
    cpu = broker.cpu() - cpu_before
    megabytes = acked * size / 1e6
    return topic, acked, {
        "MB/s": megabytes / elapsed, "msgs/s": acked / elapsed, "broker CPU %": 100 * cpu / elapsed,
    }


def produce_latency(broker, rate=20, count=200, warmup=10):
    create_topic(broker.bootstrap, "latency", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    samples = []
    for i in range(warmup + count):
        started = time.monotonic()
        done = threading.Event()
        producer.produce("latency", b"x" * 100, on_delivery=lambda e, m: done.set())
        while not done.is_set():
            producer.poll(0.0005)
        if i >= warmup:  # the first sends also look up metadata
            samples.append((time.monotonic() - started) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    return percentiles(samples)


def end_to_end_latency(broker, rate=50, count=300):
    create_topic(broker.bootstrap, "e2e", 1)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench-e2e",
                         "fetch.wait.max.ms": 500, "fetch.min.bytes": 1})
    consumer.assign([TopicPartition("e2e", 0, 0)])
    samples = []
    stop = threading.Event()

    def consume():
        while not stop.is_set() and len(samples) < count:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                sent = float(message.value().decode())
                samples.append((time.time() - sent) * 1000)

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(1)  # the consumer is fetching before the first message
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for _ in range(count):
        producer.produce("e2e", str(time.time()).encode())
        producer.poll(0)
        time.sleep(1 / rate)
    producer.flush(30)
    reader.join(30)
    stop.set()
    consumer.close()
    return percentiles(samples)


def catch_up(broker, topic, count):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench-catch-up",
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
                         "queued.max.messages.kbytes": 256 << 10})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    cpu_before, started = broker.cpu(), time.monotonic()
    received = nbytes = 0
    while received < count and time.monotonic() - started < 120:
        for message in consumer.consume(10000, 0.5):
            if not message.error():
                received += 1
                nbytes += len(message.value())
    elapsed = time.monotonic() - started
    cpu = broker.cpu() - cpu_before
    consumer.close()
    return {"MB/s": nbytes / 1e6 / elapsed, "msgs/s": received / elapsed, "broker CPU %": 100 * cpu / elapsed}


def percentiles(samples):
    samples = sorted(samples)
    return {"p50 ms": statistics.median(samples), "p99 ms": samples[int(len(samples) * 0.99) - 1],
            "n": len(samples)}


def show(label, figures):
    text = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
    print(f"  {label:<28} {text}", flush=True)


def run(store, seconds):
    print(f"{store} store:", flush=True)
    broker = Broker(store)
    try:
        produced = {}
        for size in (256, 1024, 100 * 1024):
            topic, count, figures = throughput(broker, size, seconds)
            show(f"produce {size} B", figures)
            produced[size] = (topic, count)
        show("catch-up 1 KiB, warm cache", catch_up(broker, *produced[1024]))
        broker.restart()
        show("catch-up 1 KiB, from store", catch_up(broker, *produced[1024]))
        show("catch-up 100 KiB, from store", catch_up(broker, *produced[100 * 1024]))
        show("produce latency @20/s", produce_latency(broker))
        show("end-to-end latency @50/s", end_to_end_latency(broker))
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["local", "s3", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    for store in (["local", "s3"] if args.store == "both" else [args.store]):
        run(store, args.seconds)


if __name__ == "__main__":
    main()
