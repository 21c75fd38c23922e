"""FindCoordinator at every version, single and batched keys. (Every
consumer and admin client in tests/handlers/test_groups.py finds its
coordinator through it too.)"""

from twisted.trial import unittest

from kafscale.metadata.interfaces import BrokerInfo
from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread, start_broker
from tests.support.groups import find
from tests.support.wire import Connection


class FindCoordinatorTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        self.host, port = self.bootstrap.split(":")
        self.port = int(port)

    def connection(self):
        connection = Connection(self.bootstrap)
        self.addCleanup(connection.close)
        return connection

    async def test_every_version(self):
        def run():
            connection = self.connection()
            for version in range(7):
                keys = ["a", "b/c", ""] if version >= 4 else ["group"]
                self.assertEqual(find(connection, version, keys),
                                 [(key, ErrorCode.NONE, 0, self.host, self.port) for key in keys])

        await in_thread(run)

    async def test_group_and_transaction_coordinators(self):
        def run():
            connection = self.connection()
            for version in (1, 3, 4, 6):
                [(_, error, node_id, _, _)] = find(connection, version, ["transactional-id"], key_type=1)
                self.assertEqual((error, node_id), (ErrorCode.NONE, 0))
            [(_, error, node_id, _, _)] = find(connection, 6, ["share-group"], key_type=2)
            self.assertEqual((error, node_id), (ErrorCode.INVALID_REQUEST, -1))

        await in_thread(run)

    async def test_no_transaction_coordinators_with_transactions_off(self):
        _, bootstrap = await start_broker(self, "--transactions", "false")

        def run():
            connection = Connection(bootstrap)
            try:
                for version in (1, 3, 4, 6):
                    [(_, error, node_id, _, _)] = find(connection, version, ["transactional-id"], key_type=1)
                    self.assertEqual((error, node_id), (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1))
            finally:
                connection.close()

        await in_thread(run)

    async def test_names_the_coordinating_broker(self):
        owners = {"here": BrokerInfo(0, self.host, self.port, None, 0),
                  "there": BrokerInfo(3, "10.0.0.3", 9092, None, 0)}
        self.patch(self.broker.view, "coordinator_for", owners.get)

        def run():
            connection = self.connection()
            self.assertEqual(find(connection, 4, ["here", "there", "nowhere"]), [
                ("here", ErrorCode.NONE, 0, self.host, self.port),
                ("there", ErrorCode.NONE, 3, "10.0.0.3", 9092),
                ("nowhere", ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1),
            ])
            self.assertEqual(find(connection, 2, ["there"]), [("there", ErrorCode.NONE, 3, "10.0.0.3", 9092)])

        await in_thread(run)
