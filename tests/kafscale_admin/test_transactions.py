"""``kafscale-admin transactions`` beside a running broker: a transaction
left open is listed, described, and aborted by the CLI, after which the
broker writes its markers and the partition's last stable offset moves on."""

from tests.support.admin import AdminCase
from tests.support.brokers import in_thread
from tests.support.topics import create_topic
from tests.support.transactions import TRANSACTIONS, add_partitions, init_producer, transactional_produce
from tests.support.waiting import eventually
from tests.support.wire import Connection


class TransactionsTests(AdminCase):
    broker_args = (*TRANSACTIONS, "--transaction-check-interval-ms", "100")

    async def setUp(self):
        await super().setUp()
        await create_topic(self.bootstrap, "orders")

        def open_transaction():
            connection = Connection(self.bootstrap)
            try:
                producer = init_producer(connection, "hanging")
                add_partitions(connection, "hanging", producer, "orders", [0])
                transactional_produce(connection, "hanging", producer, 0, "orders", [b"x"])
                return producer
            finally:
                connection.close()

        self.producer = await in_thread(open_transaction)

    async def test_list_describe_abort(self):
        [listed] = await self.admin_json("transactions", "list")
        self.assertEqual((listed["transactional_id"], listed["state"], listed["producer_id"], listed["partitions"]),
                         ("hanging", "Ongoing", self.producer[0], 1))
        described = await self.admin_json("transactions", "describe", "hanging")
        self.assertEqual(described["partitions"], [{"topic": "orders", "partition": 0}])
        log = self.broker.logs[("orders", 0)]
        self.assertEqual(log.last_stable_offset, 0)
        await self.admin("transactions", "abort", "hanging")
        await eventually(lambda: log.last_stable_offset == 2, what="the ABORT marker")
        [listed] = await self.admin_json("transactions", "list")
        self.assertEqual((listed["state"], listed["producer_epoch"]), ("CompleteAbort", self.producer[1] + 1))
        await self.refused("transactions", "abort", "hanging", says="not Ongoing")
        await self.refused("transactions", "describe", "nobody", says="no transactional id")
