"""Real Kafka clients, driven from tests (call these through ``in_thread``:
they block)."""

import itertools
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def produce(bootstrap, topic, messages, **settings):
    """Send (key, value, headers, partition) tuples with confluent-kafka, acks=all;
    -> list of (partition, offset) in the order given."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", **settings})
    results = [None] * len(messages)

    def delivered(index):
        def report(error, message):
            results[index] = error if error else (message.partition(), message.offset())
        return report

    for index, (key, value, headers, partition) in enumerate(messages):
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered(index), **extra)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise AssertionError(f"{remaining} messages still unacknowledged")
    errors = [r for r in results if not isinstance(r, tuple)]
    if errors:
        raise AssertionError(f"{len(errors)} deliveries failed, first: {errors[0]}")
    return results


def result_or_error(future, timeout=20):
    """An admin client future's result, or the KafkaError it failed with."""
    try:
        return future.result(timeout)
    except KafkaException as e:
        return e.args[0]


def consume(bootstrap, topic, partitions, count, timeout=30, **settings):
    """Read ``count`` messages from the start of ``partitions`` with
    confluent-kafka; -> list of Message."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-unused", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", **settings})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error():
                    raise KafkaException(message.error())
                messages.append(message)
        return messages
    finally:
        consumer.close()


class NumberedProducer:
    """A confluent-kafka producer (acks=all, retrying; idempotent unless the
    settings say otherwise) sending numbered values round the partitions
    from a thread until stopped; remembers where each acknowledged value
    landed. With ``keys``, the n-th value goes under key ``k{n % keys}``."""

    instances = itertools.count()

    def __init__(self, bootstrap, topic, partitions, keys=None, **settings):
        self.prefix = b"p%d-" % next(self.instances)
        self.keys = keys
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 5, "retry.backoff.ms": 50, "message.timeout.ms": 60000,
                                  **settings})
        self.topic = topic
        self.partitions = partitions
        self.acked = {}  # value -> (partition, offset)
        self.failed = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def acked_since(self, count):
        return len(self.acked) - count

    def _delivered(self, error, message):
        if error:
            self.failed.append(error)
        else:
            self.acked[message.value()] = (message.partition(), message.offset())

    def _run(self):
        while not self._stop.is_set():
            try:
                key = None if self.keys is None else b"k%d" % (self.sent % self.keys)
                self.producer.produce(self.topic, value=self.prefix + b"%d" % self.sent, key=key,
                                      partition=self.sent % self.partitions,
                                      on_delivery=self._delivered)
                self.sent += 1
            except BufferError:
                pass
            self.producer.poll(0.003)
        self.producer.flush(60)

    def stop(self):
        self._stop.set()
        self._thread.join(90)
