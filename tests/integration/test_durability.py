"""The broker as a whole: restarts lose nothing, and an object store outage
costs retries, never acknowledged records."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import BrokerProcess, in_thread, s3_args, start_broker
from tests.support.clients import NumberedProducer, consume
from tests.support.faults import TcpProxy
from tests.support.records import build_batch
from tests.support.s3_server import s3_server
from tests.support.topics import create_topic, produce_request
from tests.support.waiting import eventually
from tests.support.wire import Connection


class RestartTests(unittest.TestCase):
    async def restart_mid_stream(self, *args):
        broker = BrokerProcess(*args)
        await in_thread(broker.start)
        self.addCleanup(broker.stop)
        await create_topic(broker.bootstrap, "steady", partitions=3)
        # Without idempotence: the broker alone must keep restarts free of duplicates.
        producer = NumberedProducer(broker.bootstrap, "steady", 3, **{"enable.idempotence": False}).start()
        await eventually(lambda: len(producer.acked) >= 300, timeout=30)
        await in_thread(broker.stop)
        await in_thread(broker.start)
        acked_before = len(producer.acked)
        await eventually(lambda: len(producer.acked) >= acked_before + 300, timeout=30)
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])

        got = await in_thread(consume, broker.bootstrap, "steady", range(3), len(producer.acked), timeout=60)
        seen = {m.value(): (m.partition(), m.offset()) for m in got}
        self.assertEqual(len(seen), len(got), "a record was stored twice")
        for value, position in producer.acked.items():
            self.assertEqual(seen.get(value), position, value)
        for partition in range(3):
            offsets = sorted(o for p, o in seen.values() if p == partition)
            self.assertEqual(offsets, list(range(len(offsets))))

    async def test_restart_mid_stream_local_store(self):
        await self.restart_mid_stream()

    async def test_restart_mid_stream_s3(self):
        await self.restart_mid_stream(*await s3_args(self))


class ObjectStoreOutageTests(unittest.TestCase):
    async def setUp(self):
        server = s3_server()
        self.proxy = TcpProxy("127.0.0.1", server.port)
        await self.proxy.start()
        self.addCleanup(self.proxy.close)
        args = await s3_args(self)
        args[args.index("--s3-endpoint") + 1] = self.proxy.endpoint
        self.broker, self.bootstrap = await start_broker(self, *args)
        await create_topic(self.bootstrap, "survivor")

    async def test_outage_costs_retries_not_records(self):
        producer = NumberedProducer(self.bootstrap, "survivor", 1, **{"enable.idempotence": False}).start()
        self.addCleanup(lambda: in_thread(producer.stop))
        await eventually(lambda: len(producer.acked) >= 100, timeout=30)

        await self.proxy.cut()
        acked_during_cut = len(producer.acked)

        def produce_once():
            conn = Connection(self.bootstrap)
            try:
                body = produce_request("survivor", build_batch([(b"k", b"during", [])]))
                return conn.request(ApiKey.PRODUCE, 9, body)["responses"][0]["partition_responses"][0]
            finally:
                conn.close()

        answer = await in_thread(produce_once)
        self.assertEqual(answer["error_code"], ErrorCode.KAFKA_STORAGE_ERROR)
        self.assertTrue(ErrorCode(answer["error_code"]).retriable)

        await self.proxy.restore()
        await eventually(lambda: len(producer.acked) >= acked_during_cut + 100, timeout=60)
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])

        got = await in_thread(consume, self.bootstrap, "survivor", [0], len(producer.acked), timeout=60)
        seen = {m.value(): m.offset() for m in got}
        self.assertEqual(len(seen), len(got), "a record was stored twice")
        for value, (_, offset) in producer.acked.items():
            self.assertEqual(seen.get(value), offset, value)
        self.assertEqual(sorted(seen.values()), list(range(len(seen))))
