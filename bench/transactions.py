"""Transaction figures with confluent-kafka against one broker process
(local store, or moto with --s3): produce throughput with and without
transactions, the latency of commit_transaction(), and end-to-end latency
for a read_committed consumer.

    PYTHONPATH=. python bench/transactions.py [--records 20000] [--runs 3] [--commits 200] [--s3]

Client, broker (and moto) share this machine's cores: figures are floors.
"""

import argparse
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.brokers import BrokerProcess
from tests.support.s3_server import S3Server, unique_bucket

PARTITIONS = 3
VALUE = b"x" * 1024


def create(bootstrap, *topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, PARTITIONS) for t in topics]).values():
        future.result(20)


def throughput(bootstrap, topic, records, transaction_size):
    """MB/s of ``records`` 1 KiB records, acks=all, idempotent; in
    transactions of ``transaction_size`` records (0: none)."""
    settings = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True}
    if transaction_size:
        settings["transactional.id"] = f"bench-{topic}"
    producer = Producer(settings)
    if transaction_size:
        producer.init_transactions(30)
    start = time.monotonic()
    sent = 0
    while sent < records:
        if transaction_size:
            producer.begin_transaction()
        for _ in range(transaction_size or records):
            while True:
                try:
                    producer.produce(topic, VALUE, partition=sent % PARTITIONS)
                    break
                except BufferError:
                    producer.poll(0.01)
            sent += 1
        if transaction_size:
            producer.commit_transaction(60)
    producer.flush(60)
    return records * len(VALUE) / (time.monotonic() - start) / 1e6


def commit_latencies(bootstrap, topic, commits, partitions):
    """Seconds each commit_transaction() of a one-record-per-partition
    transaction took."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "transactional.id": f"lat-{topic}"})
    producer.init_transactions(30)
    latencies = []
    for _ in range(commits):
        producer.begin_transaction()
        for partition in range(partitions):
            producer.produce(topic, VALUE, partition=partition)
        producer.flush(30)
        start = time.monotonic()
        producer.commit_transaction(30)
        latencies.append(time.monotonic() - start)
    return latencies


def end_to_end(bootstrap, topic, samples):
    """Seconds from produce() of a one-record transaction to its arrival at
    a read_committed consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 500, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    sent = {}
    received = []
    done = threading.Event()

    def consume():
        while not done.is_set():
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                received.append(time.monotonic() - sent[message.value()])
                if len(received) == samples:
                    done.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "transactional.id": f"e2e-{topic}"})
    producer.init_transactions(30)
    for n in range(samples):
        value = b"%d" % n
        producer.begin_transaction()
        sent[value] = time.monotonic()
        producer.produce(topic, value, partition=0)
        producer.commit_transaction(30)
        time.sleep(0.02)
    done.wait(30)
    consumer.close()
    return received


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    extra, env, s3 = [], None, None
    if args.s3:
        import botocore.session

        s3 = S3Server()
        s3.start()
        bucket = unique_bucket()
        botocore.session.get_session().create_client(
            "s3", endpoint_url=s3.endpoint, region_name="us-east-1",
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
        ).create_bucket(Bucket=bucket)
        extra = ["--s3-bucket", bucket, "--s3-endpoint", s3.endpoint, "--s3-region", "us-east-1"]
        env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    broker = BrokerProcess("--transactions", "true", *extra, env=env).start(60)
    try:
        bootstrap = broker.bootstrap
        create(bootstrap, "plain", "txn", "latency", "e2e")
        # Alternated, best of each: other load on the machine comes and goes.
        plain, transactional = [], []
        for _ in range(args.runs):
            plain.append(throughput(bootstrap, "plain", args.records, 0))
            transactional.append(throughput(bootstrap, "txn", args.records, 1000))
        print(f"produce 1 KiB acks=all, {PARTITIONS} partitions, best of {args.runs}: plain {max(plain):.1f} MB/s,"
              f" transactions of 1000 records {max(transactional):.1f} MB/s")
        for partitions in (1, PARTITIONS):
            latencies = commit_latencies(bootstrap, "latency", args.commits, partitions)
            print(f"commit_transaction() with {partitions} partition(s): p50 {percentile(latencies, 0.5) * 1000:.1f}"
                  f" ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms ({len(latencies)} commits)")
        latencies = end_to_end(bootstrap, "e2e", args.commits)
        print(f"end to end, read_committed: p50 {percentile(latencies, 0.5) * 1000:.1f} ms,"
              f" p99 {percentile(latencies, 0.99) * 1000:.1f} ms ({len(latencies)} records)")
    finally:
        broker.stop()
        if s3:
            s3.stop()


if __name__ == "__main__":
    main()
