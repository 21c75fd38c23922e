"""Idempotent producers end to end: real clients at their defaults, and the
wire-level rules (InitProducerId, retries, sequences) across a restart."""

import time

from confluent_kafka import KafkaError as ClientError
from confluent_kafka import KafkaException, Producer
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import iter_batches
from kafscale.storage.partition_log import fetch_entry
from tests.support.brokers import BrokerProcess, in_thread, start_broker
from tests.support.clients import consume
from tests.support.records import build_batch
from tests.support.topics import create_topic, produce_request
from tests.support.wire import Connection

INIT = ApiKey.INIT_PRODUCER_ID


def init_request(transactional_id=None, producer_id=-1, epoch=-1):
    return {"transactional_id": transactional_id, "transaction_timeout_ms": 60000,
            "producer_id": producer_id, "producer_epoch": epoch}


def idempotent_batch(producer_id, epoch, sequence, values):
    return build_batch([(None, value, []) for value in values], producer=(producer_id, epoch, sequence))


def exchange(bootstrap, *requests):
    """Send (api key, version, body) requests in order on one connection.
    -> their responses."""
    conn = Connection(bootstrap)
    try:
        return [conn.request(api_key, version, body) for api_key, version, body in requests]
    finally:
        conn.close()


def partition_response(response):
    return response["responses"][0]["partition_responses"][0]


async def stored_batches(broker, topic):
    """(base offset, producer id, base sequence) of every committed batch,
    read back from the object store."""
    found = []
    for ref in broker.logs[(topic, 0)].state.segments:
        segment = await fetch_entry(broker.objects, ref)
        found += [(b.base_offset, b.producer_id, b.base_sequence) for b in iter_batches(segment.batches)]
    return found


class InitProducerIdTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_every_version_hands_out_new_ids(self):
        requests = [(INIT, version, init_request()) for version in range(7)]
        responses = await in_thread(exchange, self.bootstrap, *requests)
        self.assertEqual({(r["error_code"], r["producer_epoch"]) for r in responses}, {(ErrorCode.NONE, 0)})
        ids = [r["producer_id"] for r in responses]
        self.assertEqual(len(set(ids)), 7)
        self.assertTrue(all(0 <= i < 1 << 63 for i in ids))

    async def test_epoch_bump_keeps_the_id(self):
        [first] = await in_thread(exchange, self.bootstrap, (INIT, 4, init_request()))
        [bumped, half] = await in_thread(
            exchange, self.bootstrap,
            (INIT, 4, init_request(producer_id=first["producer_id"], epoch=0)),
            (INIT, 4, init_request(producer_id=first["producer_id"])),
        )
        self.assertEqual((bumped["error_code"], bumped["producer_id"], bumped["producer_epoch"]),
                         (ErrorCode.NONE, first["producer_id"], 1))
        self.assertEqual(half["error_code"], ErrorCode.INVALID_REQUEST)

    async def test_exhausted_epoch_gets_a_new_id(self):
        [bumped] = await in_thread(exchange, self.bootstrap, (INIT, 3, init_request(producer_id=77, epoch=32766)))
        self.assertEqual(bumped["error_code"], ErrorCode.NONE)
        self.assertNotEqual(bumped["producer_id"], 77)
        self.assertEqual(bumped["producer_epoch"], 0)


class TransactionalIdTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_each_producer_fences_the_one_before(self):
        first, second = await in_thread(exchange, self.bootstrap, (INIT, 4, init_request("txn")),
                                        (INIT, 4, init_request("txn")))
        self.assertEqual((second["producer_id"], second["producer_epoch"]),
                         (first["producer_id"], first["producer_epoch"] + 1))
        # KIP-360: the current producer may bump its own epoch; a fenced one may not.
        bumped, fenced = await in_thread(
            exchange, self.bootstrap,
            (INIT, 4, init_request("txn", second["producer_id"], second["producer_epoch"])),
            (INIT, 4, init_request("txn", first["producer_id"], first["producer_epoch"])))
        self.assertEqual((bumped["error_code"], bumped["producer_epoch"]), (ErrorCode.NONE, second["producer_epoch"] + 1))
        self.assertEqual(fenced["error_code"], ErrorCode.PRODUCER_FENCED)

    async def test_timeout_beyond_the_maximum_is_refused(self):
        request = {**init_request("txn"), "transaction_timeout_ms": 900_001}
        [response] = await in_thread(exchange, self.bootstrap, (INIT, 4, request))
        self.assertEqual(response["error_code"], ErrorCode.INVALID_TRANSACTION_TIMEOUT)

    async def test_zombie_producer_is_fenced(self):
        await create_topic(self.bootstrap, "orders")

        def two_producers():
            older = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": "txn"})
            older.init_transactions(20)
            older.begin_transaction()
            older.produce("orders", b"zombie", partition=0)
            older.flush(20)
            newer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": "txn"})
            newer.init_transactions(20)
            newer.begin_transaction()
            newer.produce("orders", b"fresh", partition=0)
            newer.commit_transaction(20)
            try:
                older.produce("orders", b"zombie again", partition=0)
                older.commit_transaction(20)
            except KafkaException as e:
                return e.args[0]

        error = await in_thread(two_producers)
        self.assertIsNotNone(error, "the older producer committed")
        self.assertEqual(error.code(), ClientError._FENCED if error.fatal() else ClientError.PRODUCER_FENCED, error)
        values = [m.value() for m in await in_thread(consume, self.bootstrap, "orders", [0], 1,
                                                     **{"isolation.level": "read_committed"})]
        self.assertEqual(values, [b"fresh"])


class TransactionsOffTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--transactions", "false")

    async def test_transactional_id_is_refused(self):
        [response] = await in_thread(exchange, self.bootstrap, (INIT, 4, init_request("txn")))
        self.assertEqual(response["error_code"], ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        self.assertEqual(response["producer_id"], -1)

    async def test_librdkafka_init_transactions_fails_at_once(self):
        # With transactions off, a transactional producer must be told so
        # at once, not retry until its timeout.
        def init_transactions():
            producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": "txn"})
            started = time.monotonic()
            try:
                producer.init_transactions(15)
            except KafkaException as e:
                return time.monotonic() - started, e.args[0]

        elapsed, error = await in_thread(init_transactions)
        self.assertLess(elapsed, 5)
        self.assertTrue(error.fatal() and not error.retriable(), error)
        self.assertEqual(error.code(), ClientError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error)


class IdempotentProduceTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_kafka_python_defaults(self):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        def round_trip():
            producer = KafkaProducer(bootstrap_servers=self.bootstrap)
            futures = [producer.send("kp-default", value=b"v%d" % i) for i in range(30)]
            offsets = [f.get(timeout=20).offset for f in futures]
            producer.close()
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, consumer_timeout_ms=3000)
            consumer.assign([TopicPartition("kp-default", 0)])
            consumer.seek_to_beginning()
            values = [r.value for r in consumer]
            consumer.close()
            return offsets, values

        offsets, values = await in_thread(round_trip)
        self.assertEqual(offsets, list(range(30)))
        self.assertEqual(values, [b"v%d" % i for i in range(30)])
        self.assertIdempotent(await stored_batches(self.broker, "kp-default"))

    async def test_confluent_kafka_with_idempotence(self):
        def send():
            producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5})
            errors = []
            for i in range(200):
                producer.produce("rd-idempotent", value=b"v%d" % i, on_delivery=lambda e, m: errors.append(e))
            producer.flush(20)
            return errors

        errors = await in_thread(send)
        self.assertEqual(errors, [None] * 200)
        got = await in_thread(consume, self.bootstrap, "rd-idempotent", [0], 200)
        self.assertEqual([m.value() for m in got], [b"v%d" % i for i in range(200)])
        self.assertIdempotent(await stored_batches(self.broker, "rd-idempotent"))

    def assertIdempotent(self, batches):
        """One producer id, and sequences that follow the offsets."""
        self.assertEqual(len({producer_id for _, producer_id, _ in batches}), 1)
        self.assertGreaterEqual(batches[0][1], 0)
        self.assertEqual([sequence for _, _, sequence in batches], [offset for offset, _, _ in batches])

    async def new_producer(self):
        await create_topic(self.bootstrap, "raw")
        [init] = await in_thread(exchange, self.bootstrap, (INIT, 4, init_request()))
        return init["producer_id"]

    async def test_retried_batch_is_stored_once(self):
        producer_id = await self.new_producer()
        first = idempotent_batch(producer_id, 0, 0, [b"a", b"b"])
        second = idempotent_batch(producer_id, 0, 2, [b"c"])
        responses = await in_thread(exchange, self.bootstrap, *[
            (ApiKey.PRODUCE, 9, produce_request("raw", batch)) for batch in (first, second, first, second)
        ])
        answers = [(partition_response(r)["error_code"], partition_response(r)["base_offset"]) for r in responses]
        self.assertEqual(answers, [(ErrorCode.NONE, 0), (ErrorCode.NONE, 2), (ErrorCode.NONE, 0), (ErrorCode.NONE, 2)])
        self.assertEqual(await stored_batches(self.broker, "raw"), [(0, producer_id, 0), (2, producer_id, 2)])

    async def test_out_of_order_and_fenced_batches_are_refused(self):
        producer_id = await self.new_producer()
        responses = await in_thread(exchange, self.bootstrap, *[
            (ApiKey.PRODUCE, 9, produce_request("raw", idempotent_batch(producer_id, epoch, sequence, [b"x"])))
            for epoch, sequence in ((0, 0), (0, 2), (1, 0), (0, 1))
        ])
        self.assertEqual([partition_response(r)["error_code"] for r in responses], [
            ErrorCode.NONE, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.NONE, ErrorCode.INVALID_PRODUCER_EPOCH,
        ])
        self.assertEqual(self.broker.logs[("raw", 0)].high_watermark, 2)

    async def test_retry_after_a_crash_and_restart_is_still_a_duplicate(self):
        broker = BrokerProcess()
        self.addCleanup(in_thread, broker.stop)
        await in_thread(broker.start)
        await create_topic(broker.bootstrap, "raw")
        [init] = await in_thread(exchange, broker.bootstrap, (INIT, 4, init_request()))
        producer_id = init["producer_id"]
        batches = [idempotent_batch(producer_id, 0, sequence, [b"r%d" % sequence]) for sequence in range(3)]
        await in_thread(exchange, broker.bootstrap, *[
            (ApiKey.PRODUCE, 9, produce_request("raw", batch)) for batch in batches[:2]
        ])
        await in_thread(broker.kill)
        await in_thread(broker.start)
        responses = await in_thread(exchange, broker.bootstrap, *[
            (ApiKey.PRODUCE, 9, produce_request("raw", batch)) for batch in (batches[1], batches[0], batches[2])
        ])
        self.assertEqual([(partition_response(r)["error_code"], partition_response(r)["base_offset"])
                          for r in responses], [(ErrorCode.NONE, 1), (ErrorCode.NONE, 0), (ErrorCode.NONE, 2)])
        got = await in_thread(consume, broker.bootstrap, "raw", [0], 4, timeout=3)
        self.assertEqual([(m.offset(), m.value()) for m in got], [(0, b"r0"), (1, b"r1"), (2, b"r2")])
