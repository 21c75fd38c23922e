"""AddPartitionsToTxn on the wire: adding, KIP-890's batched verify-only
form, and the partitions' refusal of transactional batches their producer's
ongoing transaction does not hold (no hanging transactions)."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
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
from tests.support.wire import Connection


def verify(connection, transactional_id, producer, topic, partitions, version=4):
    answer = connection.request(ApiKey.ADD_PARTITIONS_TO_TXN, version, {"transactions": [{
        "transactional_id": transactional_id, "producer_id": producer[0], "producer_epoch": producer[1],
        "verify_only": True, "topics": [{"name": topic, "partitions": list(partitions)}]}]})
    [result] = answer["results_by_transaction"]
    return {p["partition_index"]: p["partition_error_code"]
            for t in result["topic_results"] for p in t["results_by_partition"]}


class AddPartitionsToTxnTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *TRANSACTIONS)
        await create_topic(self.bootstrap, "orders", partitions=2)
        self.connection = Connection(self.bootstrap)
        self.addCleanup(self.connection.close)

    def call(self, function, *args, **kwargs):
        return in_thread(function, self.connection, *args, **kwargs)

    async def test_every_version_adds(self):
        for version in range(4):
            producer = await self.call(init_producer, f"tx-{version}")
            self.assertEqual(await self.call(add_partitions, f"tx-{version}", producer, "orders", [0, 1],
                                             version=version), {0: 0, 1: 0})
            self.assertEqual(await self.call(verify, f"tx-{version}", producer, "orders", [0, 1]), {0: 0, 1: 0})

    async def test_verify_only_adds_nothing(self):
        producer = await self.call(init_producer, "tx")
        self.assertEqual(await self.call(add_partitions, "tx", producer, "orders", [0]), {0: 0})
        self.assertEqual(await self.call(verify, "tx", producer, "orders", [0, 1]),
                         {0: ErrorCode.NONE, 1: ErrorCode.INVALID_TXN_STATE})
        self.assertEqual(await self.call(verify, "tx", producer, "orders", [1]), {1: ErrorCode.INVALID_TXN_STATE})

    async def test_unknown_partition_adds_none(self):
        producer = await self.call(init_producer, "tx")
        self.assertEqual(await self.call(add_partitions, "tx", producer, "orders", [0, 7]),
                         {0: ErrorCode.OPERATION_NOT_ATTEMPTED, 7: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION})
        self.assertEqual(await self.call(verify, "tx", producer, "orders", [0]), {0: ErrorCode.INVALID_TXN_STATE})

    async def test_stale_epoch_is_fenced(self):
        producer = await self.call(init_producer, "tx")
        await self.call(init_producer, "tx")
        self.assertEqual(await self.call(add_partitions, "tx", producer, "orders", [0]),
                         {0: ErrorCode.PRODUCER_FENCED})

    async def test_batch_for_a_partition_not_added_is_refused(self):
        producer = await self.call(init_producer, "tx")
        self.assertEqual(await self.call(add_partitions, "tx", producer, "orders", [0]), {0: 0})
        error, _ = await self.call(transactional_produce, "tx", producer, 0, "orders", [b"x"], partition=1)
        self.assertEqual(error, ErrorCode.INVALID_TXN_STATE)
        self.assertEqual(self.broker.logs[("orders", 1)].high_watermark, 0)

    async def test_late_batch_of_an_ended_transaction_is_refused(self):
        # Jepsen's hanging transaction: a batch delayed past its
        # transaction's end must not open a transaction nobody will end.
        producer = await self.call(init_producer, "tx")
        await self.call(add_partitions, "tx", producer, "orders", [0])
        self.assertEqual(await self.call(transactional_produce, "tx", producer, 0, "orders", [b"x"]),
                         (ErrorCode.NONE, 0))
        self.assertEqual(await self.call(end_transaction, "tx", producer, False), ErrorCode.NONE)
        error, _ = await self.call(transactional_produce, "tx", producer, 1, "orders", [b"late"])
        self.assertEqual(error, ErrorCode.INVALID_TXN_STATE)
        answer = await self.call(fetch_committed, "orders")
        self.assertEqual((answer["high_watermark"], answer["last_stable_offset"]), (2, 2))
