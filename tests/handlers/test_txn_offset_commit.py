"""TxnOffsetCommit and AddOffsetsToTxn: a consume-transform-produce loop's
offsets are committed with its transaction, and dropped with an aborted one."""

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.structs import OffsetAndMetadata
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import produce
from tests.support.groups import FAST_REBALANCES, join_as_new_member, sync
from tests.support.topics import create_topic
from tests.support.transactions import TRANSACTIONS, confluent_values, init_producer
from tests.support.wire import Connection


def copy_with_confluent(bootstrap, source, target, group, commit):
    """Copy ``source`` to ``target`` in one transaction with the group's
    offsets, then commit or abort it. -> how many records were copied."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"copier-{group}"})
    try:
        producer.init_transactions(20)
        consumer.assign([TopicPartition(source, 0, 0)])
        messages = []
        while len(messages) < 5:
            messages += [m for m in consumer.consume(5, 1.0) if not m.error()]
        producer.begin_transaction()
        for message in messages:
            producer.produce(target, value=message.value().upper(), partition=0)
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 20)
        if commit:
            producer.commit_transaction(20)
        else:
            producer.abort_transaction(20)
        return len(messages)
    finally:
        consumer.close()


def committed_offset(bootstrap, topic, group):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return consumer.committed([TopicPartition(topic, 0)], 20)[0].offset
    finally:
        consumer.close()


def kafka_python_offsets(bootstrap, topic, group, offset):
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"kp-{group}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"x", partition=0)
        producer.send_offsets_to_transaction({KafkaTopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)},
                                             group)
        producer.commit_transaction()
    finally:
        producer.close()


def aiokafka_offsets(bootstrap, topic, group, offset):
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"ak-{group}")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"x", partition=0)
                await producer.send_offsets_to_transaction(
                    {AioTopicPartition(topic, 0): AioOffsetAndMetadata(offset, "")}, group)
        finally:
            await producer.stop()

    asyncio.run(run())


class TxnOffsetCommitTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "in")
        await create_topic(self.bootstrap, "out")
        await in_thread(produce, self.bootstrap, "in", [(None, b"v%d" % i, None, 0) for i in range(5)])

    async def test_committed_with_the_transaction(self):
        self.assertEqual(await in_thread(copy_with_confluent, self.bootstrap, "in", "out", "copiers", True), 5)
        self.assertEqual(await in_thread(committed_offset, self.bootstrap, "in", "copiers"), 5)
        self.assertEqual(sorted(await in_thread(confluent_values, self.bootstrap, "out", 1, "read_committed", 5)),
                         [b"V0", b"V1", b"V2", b"V3", b"V4"])

    async def test_dropped_with_an_aborted_transaction(self):
        self.assertEqual(await in_thread(copy_with_confluent, self.bootstrap, "in", "out", "copiers", False), 5)
        self.assertLess(await in_thread(committed_offset, self.bootstrap, "in", "copiers"), 0)
        self.assertEqual(await in_thread(confluent_values, self.bootstrap, "out", 1, "read_committed", 0,
                                         timeout=2), [])

    async def test_kafka_python_and_aiokafka(self):
        await in_thread(kafka_python_offsets, self.bootstrap, "in", "kp-group", 3)
        self.assertEqual(await in_thread(committed_offset, self.bootstrap, "in", "kp-group"), 3)
        await in_thread(aiokafka_offsets, self.bootstrap, "in", "ak-group", 4)
        self.assertEqual(await in_thread(committed_offset, self.bootstrap, "in", "ak-group"), 4)

    async def test_offsets_of_a_group_not_added_are_refused(self):
        def attempt():
            connection = Connection(self.bootstrap)
            try:
                producer = init_producer(connection, "tx")
                return connection.request(ApiKey.TXN_OFFSET_COMMIT, 3, {
                    "transactional_id": "tx", "group_id": "readers", "producer_id": producer[0],
                    "producer_epoch": producer[1], "generation_id": -1, "member_id": "", "group_instance_id": None,
                    "topics": [{"name": "in", "partitions": [{"partition_index": 0, "committed_offset": 3,
                                                              "committed_leader_epoch": -1,
                                                              "committed_metadata": ""}]}]})
            finally:
                connection.close()

        answer = await in_thread(attempt)
        self.assertEqual(answer["topics"][0]["partitions"][0]["error_code"], ErrorCode.INVALID_TXN_STATE)

    async def test_a_zombie_consumers_offsets_are_refused(self):
        """KIP-447: offsets name the member and generation they were read
        under; once those are not the group's, they are refused."""
        def attempt():
            connection = Connection(self.bootstrap)
            try:
                joined = join_as_new_member(self, connection, 5, "readers")
                member, generation = joined["member_id"], joined["generation_id"]
                self.assertEqual(sync(connection, 3, "readers", member, generation, [(member, b"")])["error_code"],
                                 ErrorCode.NONE)
                producer = init_producer(connection, "tx")
                added = connection.request(ApiKey.ADD_OFFSETS_TO_TXN, 3, {
                    "transactional_id": "tx", "producer_id": producer[0], "producer_epoch": producer[1],
                    "group_id": "readers"})
                self.assertEqual(added["error_code"], ErrorCode.NONE)

                def commit(member_id, generation_id):
                    answer = connection.request(ApiKey.TXN_OFFSET_COMMIT, 3, {
                        "transactional_id": "tx", "group_id": "readers", "producer_id": producer[0],
                        "producer_epoch": producer[1], "generation_id": generation_id, "member_id": member_id,
                        "group_instance_id": None,
                        "topics": [{"name": "in", "partitions": [{"partition_index": 0, "committed_offset": 3,
                                                                  "committed_leader_epoch": -1,
                                                                  "committed_metadata": ""}]}]})
                    return answer["topics"][0]["partitions"][0]["error_code"]

                return [commit(member, generation), commit(member, generation + 1), commit("zombie", generation),
                        commit("", -1)]
            finally:
                connection.close()

        self.assertEqual(await in_thread(attempt), [ErrorCode.NONE, ErrorCode.ILLEGAL_GENERATION,
                                                    ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.NONE])
