"""EndTxn end to end: transactional producers of three clients commit and
abort; read_committed consumers see the committed records only,
read_uncommitted ones every record; the wire-level rules of ending."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread, start_broker
from tests.support.topics import create_topic
from tests.support.transactions import (
    TRANSACTIONS,
    add_partitions,
    aiokafka_transactions,
    aiokafka_values,
    confluent_transactions,
    confluent_values,
    end_transaction,
    fetch_committed,
    init_producer,
    kafka_python_transactions,
    kafka_python_values,
    transactional_produce,
)
from tests.support.wire import Connection

COMMITTED = [(b"c0", b"c1", b"c2"), True]
ABORTED = [(b"a0", b"a1", b"a2"), False]
LAST = [(b"c3",), True]


class EndTxnClientTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS)

    async def test_confluent_commit_and_abort(self):
        await create_topic(self.bootstrap, "orders", partitions=2)
        await in_thread(confluent_transactions, self.bootstrap, "tx-confluent", [COMMITTED, ABORTED, LAST],
                        "orders", partitions=2)
        committed = await in_thread(confluent_values, self.bootstrap, "orders", 2, "read_committed", 4)
        self.assertEqual(sorted(committed), [b"c0", b"c1", b"c2", b"c3"])
        everything = await in_thread(confluent_values, self.bootstrap, "orders", 2, "read_uncommitted", 7)
        self.assertEqual(sorted(everything), [b"a0", b"a1", b"a2", b"c0", b"c1", b"c2", b"c3"])
        for partition in (0, 1):
            log = self.broker.logs[("orders", partition)]
            self.assertEqual(log.last_stable_offset, log.high_watermark)

    async def test_kafka_python_commit_and_abort(self):
        await create_topic(self.bootstrap, "orders")
        await in_thread(kafka_python_transactions, self.bootstrap, "tx-kafka-python", [COMMITTED, ABORTED, LAST],
                        "orders")
        self.assertEqual(await in_thread(kafka_python_values, self.bootstrap, "orders", "read_committed"),
                         [b"c0", b"c1", b"c2", b"c3"])
        self.assertEqual(sorted(await in_thread(kafka_python_values, self.bootstrap, "orders", "read_uncommitted")),
                         [b"a0", b"a1", b"a2", b"c0", b"c1", b"c2", b"c3"])

    async def test_aiokafka_commit_and_abort(self):
        await create_topic(self.bootstrap, "orders")
        await in_thread(aiokafka_transactions, self.bootstrap, "tx-aiokafka", [COMMITTED, ABORTED, LAST], "orders")
        self.assertEqual(await in_thread(aiokafka_values, self.bootstrap, "orders", "read_committed", 4),
                         [b"c0", b"c1", b"c2", b"c3"])
        self.assertEqual(sorted(await in_thread(aiokafka_values, self.bootstrap, "orders", "read_uncommitted", 7)),
                         [b"a0", b"a1", b"a2", b"c0", b"c1", b"c2", b"c3"])


class EndTxnWireTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS)
        await create_topic(self.bootstrap, "orders")
        self.connection = Connection(self.bootstrap)
        self.addCleanup(self.connection.close)

    async def ongoing(self, transactional_id="tx"):
        producer = await in_thread(init_producer, self.connection, transactional_id)
        self.assertEqual(await in_thread(add_partitions, self.connection, transactional_id, producer, "orders", [0]),
                         {0: 0})
        return producer

    async def test_open_transaction_holds_the_last_stable_offset(self):
        producer = await self.ongoing()
        self.assertEqual(await in_thread(transactional_produce, self.connection, "tx", producer, 0, "orders",
                                         [b"x", b"y"]), (ErrorCode.NONE, 0))
        answer = await in_thread(fetch_committed, self.connection, "orders")
        self.assertEqual((answer["high_watermark"], answer["last_stable_offset"], bytes(answer["records"])),
                         (2, 0, b""))
        uncommitted = await in_thread(fetch_committed, self.connection, "orders", isolation=0)
        self.assertNotEqual(bytes(uncommitted["records"]), b"")
        self.assertEqual(await in_thread(end_transaction, self.connection, "tx", producer, False), ErrorCode.NONE)
        answer = await in_thread(fetch_committed, self.connection, "orders")
        # The two records and the ABORT marker after them.
        self.assertEqual((answer["high_watermark"], answer["last_stable_offset"]), (3, 3))
        self.assertEqual(answer["aborted_transactions"], [{"producer_id": producer[0], "first_offset": 0}])

    async def test_ending_again_the_same_way_is_answered_alike(self):
        producer = await self.ongoing()
        self.assertEqual(await in_thread(end_transaction, self.connection, "tx", producer, True), ErrorCode.NONE)
        self.assertEqual(await in_thread(end_transaction, self.connection, "tx", producer, True), ErrorCode.NONE)
        self.assertEqual(await in_thread(end_transaction, self.connection, "tx", producer, False),
                         ErrorCode.INVALID_TXN_STATE)

    async def test_a_stale_epoch_is_fenced(self):
        producer = await self.ongoing()
        await in_thread(init_producer, self.connection, "tx")
        self.assertEqual(await in_thread(end_transaction, self.connection, "tx", producer, True),
                         ErrorCode.PRODUCER_FENCED)
