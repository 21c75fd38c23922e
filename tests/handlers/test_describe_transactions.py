"""DescribeTransactions, ListTransactions and DescribeProducers: what an
admin client sees of a transaction under way."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.topics import create_topic
from tests.support.transactions import (
    TRANSACTIONS,
    add_partitions,
    init_producer,
    transactional_produce,
)
from tests.support.wire import Connection


class TransactionAdminTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS)
        await create_topic(self.bootstrap, "orders")
        self.connection = Connection(self.bootstrap)
        self.addCleanup(self.connection.close)
        self.producer = await self.call(init_producer, "tx", timeout_ms=45000)
        await self.call(add_partitions, "tx", self.producer, "orders", [0])
        await self.call(transactional_produce, "tx", self.producer, 0, "orders", [b"x"])

    def call(self, function, *args, **kwargs):
        return in_thread(function, self.connection, *args, **kwargs)

    def request(self, api_key, version, body):
        return in_thread(self.connection.request, api_key, version, body)

    async def test_describe_transactions(self):
        answer = await self.request(ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": ["tx", "nobody"]})
        found, missing = answer["transaction_states"]
        self.assertEqual((found["error_code"], found["transaction_state"], found["transaction_timeout_ms"],
                          found["producer_id"], found["topics"]),
                         (ErrorCode.NONE, "Ongoing", 45000, self.producer[0],
                          [{"topic": "orders", "partitions": [0]}]))
        self.assertEqual(missing["error_code"], ErrorCode.TRANSACTIONAL_ID_NOT_FOUND)

    async def test_list_transactions(self):
        answer = await self.request(ApiKey.LIST_TRANSACTIONS, 1, {"state_filters": [], "producer_id_filters": [],
                                                                   "duration_filter": -1})
        self.assertEqual(answer["transaction_states"], [{"transactional_id": "tx", "producer_id": self.producer[0],
                                                         "transaction_state": "Ongoing"}])
        answer = await self.request(ApiKey.LIST_TRANSACTIONS, 1, {"state_filters": ["CompleteCommit", "Bogus"],
                                                                   "producer_id_filters": [], "duration_filter": -1})
        self.assertEqual((answer["transaction_states"], answer["unknown_state_filters"]), ([], ["Bogus"]))

    async def test_describe_producers(self):
        answer = await self.request(ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "orders",
                                                                               "partition_indexes": [0, 5]}]})
        known, unknown = answer["topics"][0]["partitions"]
        [producer] = known["active_producers"]
        self.assertEqual((producer["producer_id"], producer["producer_epoch"], producer["last_sequence"],
                          producer["current_txn_start_offset"]), (*self.producer, 0, 0))
        self.assertEqual(unknown["error_code"], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
