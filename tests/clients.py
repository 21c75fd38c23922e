"""Real Kafka clients, driven from tests (call these through ``in_thread``:
they block)."""

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
