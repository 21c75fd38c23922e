"""Cluster figures with real broker processes on one etcd and one moto
bucket, driven by confluent-kafka:

- failover: kill -9 a partition owner, then time until a record sent to one
  of its partitions is acknowledged by the successor (the lease TTL bounds
  it from below);
- graceful handoff: the same after SIGTERM;
- produce throughput (acks=all) with one broker and with two.

    PYTHONPATH=. python bench/cluster.py [--runs 3] [--seconds 5] [--lease-ttl 2,5]

Brokers, client, etcd and moto all share this machine's cores: a second
broker adds a second reactor, not a second machine.
"""

import argparse
import signal
import statistics
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.data_path import cpu_seconds
from tests.support.brokers import BrokerProcess
from tests.support.etcd_server import EtcdServer, etcd_binary
from tests.support.s3_server import S3Server, unique_bucket
from tests.support.topics import cluster_view

TOPIC = "bench"
PARTITIONS = 6


class Cluster:
    """Brokers of one new cluster on the shared etcd and bucket."""

    def __init__(self, etcd, s3, bucket, lease_ttl, count):
        cluster_id = f"bench-{uuid.uuid4().hex[:8]}"
        args = ["--etcd", etcd.endpoint, "--cluster-id", cluster_id, "--lease-ttl", str(lease_ttl),
                "--s3-bucket", bucket, "--s3-endpoint", s3.endpoint, "--s3-region", "us-east-1",
                "--log-level", "warn"]
        env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
        self.brokers = [BrokerProcess(*args, env=env) for _ in range(count)]
        threads = [threading.Thread(target=broker.start) for broker in self.brokers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(20)
        self.leaders = self.wait_for_leaders(self.brokers)

    @property
    def bootstrap(self):
        return ",".join(broker.bootstrap for broker in self.brokers)

    def wait_for_leaders(self, brokers, timeout=30):
        """{partition: leader node id} once every partition has a live leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live, leaders = cluster_view(brokers[0].bootstrap, TOPIC)
            if len(leaders) == PARTITIONS and all(leader in live for leader, _ in leaders.values()):
                self.ports = live
                return {partition: leader for partition, (leader, _) in leaders.items()}
            time.sleep(0.05)
        raise SystemExit("partitions without a leader")

    def broker_of(self, node_id):
        return next(broker for broker in self.brokers if broker.port == self.ports[node_id])

    def stop(self):
        for broker in self.brokers:
            broker.stop()


class TimedProducer:
    """Sends to every partition in turn from a thread; notes when each
    partition's acknowledgements arrive."""

    def __init__(self, bootstrap, size=100):
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 2, "retry.backoff.ms": 20, "retry.backoff.max.ms": 100,
                                  "topic.metadata.refresh.interval.ms": 1000})
        self.value = b"x" * size
        self.acks = []  # (monotonic time, partition)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _delivered(self, error, message):
        if error is None:
            self.acks.append((time.monotonic(), message.partition()))

    def _run(self):
        sent = 0
        while not self._stop.is_set():
            try:
                self.producer.produce(TOPIC, self.value, partition=sent % PARTITIONS, on_delivery=self._delivered)
                sent += 1
            except BufferError:
                pass
            self.producer.poll(0.001)
        self.producer.flush(60)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def first_ack_after(self, moment, partitions):
        return next((at for at, partition in list(self.acks) if at > moment and partition in partitions), None)


def handover(etcd, s3, bucket, lease_ttl, how):
    """Seconds from the signal until Metadata names new leaders for the
    partitions the signalled broker owned, and until a successor
    acknowledges a record sent to one of them: (takeover, first ack)."""
    cluster = Cluster(etcd, s3, bucket, lease_ttl, 3)
    try:
        victim_id = cluster.leaders[0]
        victim = cluster.broker_of(victim_id)
        moved = {partition for partition, leader in cluster.leaders.items() if leader == victim_id}
        survivors = [broker for broker in cluster.brokers if broker is not victim]
        producer = TimedProducer(",".join(broker.bootstrap for broker in survivors)).start()
        time.sleep(1.0)
        signalled = time.monotonic()
        if how == "kill":
            victim.kill()
        else:
            victim.signal(signal.SIGTERM)
        deadline = signalled + lease_ttl + 30
        taken = None
        while taken is None and time.monotonic() < deadline:
            live, leaders = cluster_view(survivors[0].bootstrap, TOPIC)
            if all(leaders[partition][0] in live and leaders[partition][0] != victim_id for partition in moved):
                taken = time.monotonic() - signalled
            time.sleep(0.005)
        while (acked := producer.first_ack_after(signalled + 0.05, moved)) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        producer.stop()
        return taken, None if acked is None else acked - signalled
    finally:
        cluster.stop()


def machine_busy():
    """(busy, total) CPU ticks of the whole machine so far."""
    with open("/proc/stat") as f:
        ticks = [int(field) for field in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def throughput(etcd, s3, bucket, brokers, seconds, size=1024):
    """Acknowledged records and MB per second, acks=all, into six
    partitions; with the brokers' CPU seconds and the machine's busy share
    over the run."""
    cluster = Cluster(etcd, s3, bucket, 10, brokers)
    try:
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5,
                             "batch.size": 256 * 1024, "enable.idempotence": True})
        acked = [0]

        def delivered(error, message):
            if error is None:
                acked[0] += 1

        value = b"x" * size
        pids = [broker.process.pid for broker in cluster.brokers]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        busy_before, total_before = machine_busy()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            try:
                producer.produce(TOPIC, value, partition=sent % PARTITIONS, on_delivery=delivered)
                sent += 1
            except BufferError:
                producer.poll(0.001)
            if sent % 1000 == 0:
                producer.poll(0)
        producer.flush(60)
        elapsed = time.monotonic() - started
        broker_cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before)]
        busy, total = machine_busy()
        return (acked[0] / elapsed, acked[0] * size / elapsed / 1e6, [cpu / elapsed for cpu in broker_cpu],
                (busy - busy_before) / (total - total_before))
    finally:
        cluster.stop()


def summary(values):
    values = [value for value in values if value is not None]
    if not values:
        return "no acknowledgement"
    return (f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f},"
            f" {len(values)} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--lease-ttl", default="2,5", help="comma-separated TTLs to measure failover with")
    options = parser.parse_args()

    etcd = EtcdServer(etcd_binary("3.5"))
    etcd.start()
    s3 = S3Server()
    s3.start()
    bucket = unique_bucket()
    import botocore.session

    botocore.session.get_session().create_client(
        "s3", endpoint_url=s3.endpoint, region_name="us-east-1",
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
    ).create_bucket(Bucket=bucket)
    try:
        cases = [(f"failover after kill -9, lease TTL {ttl} s", ttl, "kill")
                 for ttl in (int(ttl) for ttl in options.lease_ttl.split(","))]
        cases.append(("graceful handoff after SIGTERM", 10, "term"))
        for title, ttl, how in cases:
            runs = [handover(etcd, s3, bucket, ttl, how) for _ in range(options.runs)]
            print(f"{title}:\n  new leaders in Metadata: {summary([taken for taken, _ in runs])}"
                  f"\n  first acknowledgement:   {summary([acked for _, acked in runs])}", flush=True)
        for brokers in (1, 2):
            records, megabytes, broker_cpu, busy = throughput(etcd, s3, bucket, brokers, options.seconds)
            cores = ", ".join(f"{share:.0%}" for share in broker_cpu)
            print(f"produce, acks=all, 1 KiB records, {brokers} broker(s): {records:,.0f} records/s,"
                  f" {megabytes:.1f} MB/s; broker CPU {cores} of a core; machine {busy:.0%} busy", flush=True)
    finally:
        etcd.close()
        s3.stop()


if __name__ == "__main__":
    main()
