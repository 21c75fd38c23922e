"""Transactional clients and requests for tests (call the blocking ones
through ``in_thread``)."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from kafscale.protocol.messages import ApiKey
from tests.support.records import build_batch

TRANSACTIONS = ("--transactions", "true")
"""The broker option that turns transactions on."""


def confluent_transactions(bootstrap, transactional_id, transactions, topic, partitions=1, **settings):
    """Run ``transactions``, a list of (values, commit) with confluent-kafka,
    the values spread round ``partitions``; ``settings`` are further client
    settings (security, say)."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, "linger.ms": 5,
                         **settings})
    producer.init_transactions(20)
    for values, commit in transactions:
        producer.begin_transaction()
        for index, value in enumerate(values):
            producer.produce(topic, value=value, partition=index % partitions)
        producer.flush(20)
        if commit:
            producer.commit_transaction(20)
        else:
            producer.abort_transaction(20)


def kafka_python_transactions(bootstrap, transactional_id, transactions, topic):
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id)
    try:
        producer.init_transactions()
        for values, commit in transactions:
            producer.begin_transaction()
            for value in values:
                producer.send(topic, value, partition=0)
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()


def aiokafka_transactions(bootstrap, transactional_id, transactions, topic):
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id)
        await producer.start()
        try:
            for values, commit in transactions:
                await producer.begin_transaction()
                for value in values:
                    await producer.send_and_wait(topic, value, partition=0)
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(run())


def confluent_values(bootstrap, topic, partitions, isolation, count, timeout=15, **settings):
    """The values of a topic's partitions as a consumer with ``isolation``
    (read_committed or read_uncommitted) sees them: until ``count`` came, or
    the timeout; then a little longer, so that extra ones would be seen.
    ``settings`` are further client settings."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-unused", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": isolation, **settings})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = consumer.consume(1000, 0.3)
            values += [m.value() for m in messages if not m.error()]
            if len(values) >= count and not messages:
                break
        return values
    finally:
        consumer.close()


def kafka_python_values(bootstrap, topic, isolation):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000)
    try:
        consumer.assign([KafkaTopicPartition(topic, 0)])
        return [message.value for message in consumer]
    finally:
        consumer.close()


def aiokafka_values(bootstrap, topic, isolation, count, timeout=15):
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([AioTopicPartition(topic, 0)])
            values = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=300)
                got = [m.value for messages in batches.values() for m in messages]
                values += got
                if len(values) >= count and not got:
                    break
            return values
        finally:
            await consumer.stop()

    return asyncio.run(run())


# Wire-level requests

def init_producer(connection, transactional_id, timeout_ms=60000, version=4):
    """-> (producer id, epoch) from InitProducerId."""
    answer = connection.request(ApiKey.INIT_PRODUCER_ID, version, {
        "transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms,
        "producer_id": -1, "producer_epoch": -1})
    assert answer["error_code"] == 0, answer
    return answer["producer_id"], answer["producer_epoch"]


def add_partitions(connection, transactional_id, producer, topic, partitions, version=3):
    """-> {partition: error code} from AddPartitionsToTxn v0-3."""
    answer = connection.request(ApiKey.ADD_PARTITIONS_TO_TXN, version, {
        "v3_and_below_transactional_id": transactional_id, "v3_and_below_producer_id": producer[0],
        "v3_and_below_producer_epoch": producer[1],
        "v3_and_below_topics": [{"name": topic, "partitions": list(partitions)}]})
    return {p["partition_index"]: p["partition_error_code"]
            for t in answer["results_by_topic_v3_and_below"] for p in t["results_by_partition"]}


def end_transaction(connection, transactional_id, producer, commit, version=3):
    """-> the error code of EndTxn."""
    return connection.request(ApiKey.END_TXN, version, {
        "transactional_id": transactional_id, "producer_id": producer[0], "producer_epoch": producer[1],
        "committed": commit})["error_code"]


def transactional_produce(connection, transactional_id, producer, sequence, topic, values, partition=0):
    """-> (error code, base offset) of a Produce of one transactional batch."""
    batch = build_batch([(None, value, []) for value in values], producer=(*producer, sequence),
                        transactional=True)
    answer = connection.request(ApiKey.PRODUCE, 9, {
        "transactional_id": transactional_id, "acks": -1, "timeout_ms": 10000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    result = answer["responses"][0]["partition_responses"][0]
    return result["error_code"], result["base_offset"]


def fetch_committed(connection, topic, offset=0, partition=0, isolation=1, version=11):
    """-> the partition's answer to a Fetch (read_committed by default)."""
    answer = connection.request(ApiKey.FETCH, version, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": isolation,
        "session_id": 0, "session_epoch": -1, "rack_id": "", "forgotten_topics_data": [],
        "topics": [{"topic": topic, "partitions": [{"partition": partition, "current_leader_epoch": -1,
                                                     "fetch_offset": offset, "last_fetched_epoch": -1,
                                                     "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
    return answer["responses"][0]["partitions"][0]
