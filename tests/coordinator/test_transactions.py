"""The transaction coordinator on a broker: transactions left open past
their timeout are aborted (their producer fenced), what a crashed
coordinator left prepared is finished, and idle transactional ids are
forgotten after their expiration."""

from twisted.trial import unittest

from kafscale.coordinator.transactions import ONGOING, PREPARE_COMMIT
from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread, start_broker
from tests.support.topics import create_topic
from tests.support.transactions import (
    TRANSACTIONS,
    add_partitions,
    end_transaction,
    fetch_committed,
    init_producer,
    transactional_produce,
)
from tests.support.waiting import eventually
from tests.support.wire import Connection


class CoordinatorCase(unittest.TestCase):
    """A broker serving transactions, checking them every 100 ms."""

    broker_args = ()

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS, "--transaction-check-interval-ms", "100",
                                                         *self.broker_args)
        await create_topic(self.bootstrap, "orders")
        self.connection = Connection(self.bootstrap)
        self.addCleanup(self.connection.close)
        self.log = self.broker.logs[("orders", 0)]

    def call(self, function, *args, **kwargs):
        return in_thread(function, self.connection, *args, **kwargs)

    async def open_transaction(self, timeout_ms=60000):
        producer = await self.call(init_producer, "tx", timeout_ms=timeout_ms)
        await self.call(add_partitions, "tx", producer, "orders", [0])
        self.assertEqual(await self.call(transactional_produce, "tx", producer, 0, "orders", [b"x", b"y"]),
                         (ErrorCode.NONE, 0))
        self.assertEqual(self.log.last_stable_offset, 0)
        return producer


class TransactionCoordinatorTests(CoordinatorCase):
    async def test_transaction_past_its_timeout_is_aborted(self):
        producer = await self.open_transaction(timeout_ms=300)
        await eventually(lambda: self.log.last_stable_offset == 3, what="the timed-out transaction's abort")
        answer = await self.call(fetch_committed, "orders")
        self.assertEqual(answer["aborted_transactions"], [{"producer_id": producer[0], "first_offset": 0}])
        # Its producer is fenced: the abort bumped the epoch.
        self.assertEqual(await self.call(end_transaction, "tx", producer, True), ErrorCode.PRODUCER_FENCED)
        error, _ = await self.call(transactional_produce, "tx", producer, 1, "orders", [b"z"])
        self.assertEqual(error, ErrorCode.PRODUCER_FENCED)

    async def test_prepared_transaction_of_a_crashed_coordinator_is_finished(self):
        await self.open_transaction()
        state, version = await self.broker.metadata.load_transaction("tx")
        self.assertEqual(state["state"], ONGOING)
        # As a coordinator leaves it that crashed after deciding to commit.
        await self.broker.metadata.save_transaction("tx", {**state, "state": PREPARE_COMMIT}, version)
        await eventually(lambda: self.log.last_stable_offset == 3, what="the prepared commit's marker")
        answer = await self.call(fetch_committed, "orders")
        self.assertEqual((answer["last_stable_offset"], answer["aborted_transactions"]), (3, []))
        self.assertNotEqual(bytes(answer["records"]), b"")

    async def test_new_producer_aborts_the_transaction_of_the_old(self):
        old = await self.open_transaction()
        new = await self.call(init_producer, "tx")
        self.assertEqual((new[0], new[1]), (old[0], old[1] + 2))
        self.assertEqual(self.log.last_stable_offset, 3)
        answer = await self.call(fetch_committed, "orders")
        self.assertEqual(answer["aborted_transactions"], [{"producer_id": old[0], "first_offset": 0}])


class ExpirationTests(CoordinatorCase):
    broker_args = ("--transactional-id-expiration-ms", "300")

    async def test_idle_ids_are_forgotten_and_open_transactions_kept(self):
        open_producer = await self.open_transaction()
        idle = await self.call(init_producer, "idle")

        async def forgotten():
            return await self.broker.metadata.load_transaction("idle") is None

        await eventually(forgotten, what="the idle id forgotten")
        # The open transaction, older still, is kept: only its timeout ends it.
        state, _ = await self.broker.metadata.load_transaction("tx")
        self.assertEqual((state["state"], state["producer_id"]), (ONGOING, open_producer[0]))
        # A forgotten id starts again under a new producer id.
        again = await self.call(init_producer, "idle")
        self.assertNotEqual(again[0], idle[0])
