"""The server over real TCP: real clients bootstrap, and hostile bytes close
only the connection that sent them."""

import asyncio
import os
import random
import shutil
import struct
import time
from types import SimpleNamespace

from confluent_kafka import Producer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey, encode_request
from kafscale.security.quotas import ClientQuotas
from kafscale.storage.partition_log import BufferBudget
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import consume, produce
from tests.support.faults import Failing, Throttled
from tests.support.topics import create_topic
from tests.support.waiting import eventually
from tests.support.wire import Connection

METADATA_ALL = {"topics": None, "allow_auto_topic_creation": False}


class RealClientsTests(unittest.TestCase):
    async def setUp(self):
        self.service, self.bootstrap = await start_broker(self)

    async def test_kcat_lists_metadata(self):
        kcat = shutil.which("kcat")
        if kcat is None:
            raise unittest.SkipTest("kcat is not installed (Debian package kcat)")
        out, err, code = await getProcessOutputAndValue(kcat, ["-L", "-b", self.bootstrap, "-m", "10"], env=os.environ)
        self.assertEqual(code, 0, err)
        self.assertIn(b"1 brokers:", out)
        self.assertIn(f"broker 0 at {self.bootstrap}".encode(), out)

    async def test_confluent_admin_lists_topics(self):
        from confluent_kafka.admin import AdminClient

        def list_topics():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            return admin.list_topics(timeout=10)

        metadata = await in_thread(list_topics)
        self.assertEqual(list(metadata.brokers), [0])
        self.assertEqual(metadata.cluster_id, "kafscale")
        self.assertEqual(metadata.controller_id, 0)

    async def test_kafka_python_admin(self):
        from kafka.admin import KafkaAdminClient

        def describe():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
            try:
                return admin.describe_cluster(), admin.list_topics()
            finally:
                admin.close()

        cluster, topics = await in_thread(describe)
        self.assertEqual(cluster["cluster_id"], "kafscale")
        self.assertEqual([b["broker_id"] for b in cluster["brokers"]], [0])
        self.assertEqual(topics, [])

    async def test_aiokafka_bootstraps(self):
        from aiokafka.client import AIOKafkaClient

        async def bootstrap():
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap)
            try:
                await client.bootstrap()
                return [b.nodeId for b in client.cluster.brokers()]
            finally:
                await client.close()

        nodes = await in_thread(asyncio.run, bootstrap())
        self.assertEqual(nodes, [0])


class HostileInputTests(unittest.TestCase):
    """After each hostile input the broker still answers a fresh client and
    a connection that was already open."""

    async def setUp(self):
        self.service, self.bootstrap = await start_broker(self, "--max-request-size", str(1 << 20))
        self.bystander = Connection(self.bootstrap)
        self.addCleanup(self.bystander.close)
        await in_thread(self.bystander.request, ApiKey.API_VERSIONS, 3, {"client_software_name": "t"})

    async def assertStillServing(self):
        def fresh_metadata():
            fresh = Connection(self.bootstrap)
            try:
                return fresh.request(ApiKey.METADATA, 12, METADATA_ALL)
            finally:
                fresh.close()

        metadata = await in_thread(fresh_metadata)
        self.assertEqual([b["node_id"] for b in metadata["brokers"]], [0])
        versions = await in_thread(self.bystander.request, ApiKey.API_VERSIONS, 0, {})
        self.assertEqual(versions["error_code"], ErrorCode.NONE)

    async def assertClosedAfter(self, data):
        def send():
            hostile = Connection(self.bootstrap)
            try:
                hostile.send_raw(data)
                return hostile.closed_by_peer()
            finally:
                hostile.close()

        self.assertTrue(await in_thread(send))
        await self.assertStillServing()

    async def test_2gib_length_prefix(self):
        await self.assertClosedAfter(struct.pack(">I", 2**31 - 1) + b"x" * 100)

    async def test_frame_just_over_the_limit(self):
        await self.assertClosedAfter(struct.pack(">i", (1 << 20) + 1))

    async def test_negative_length_prefix(self):
        await self.assertClosedAfter(struct.pack(">i", -5) + b"abcde")

    async def test_http_request_line(self):
        await self.assertClosedAfter(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")

    async def test_random_megabyte(self):
        noise = random.Random(7).randbytes(1 << 20)
        await self.assertClosedAfter(noise)

    async def test_random_megabyte_in_a_valid_frame(self):
        noise = random.Random(8).randbytes((1 << 20) - 4)
        await self.assertClosedAfter(struct.pack(">i", len(noise)) + noise)

    async def test_truncated_request(self):
        frame = encode_request(ApiKey.METADATA, 12, 1, "t", {"topics": [{"name": "a-topic"}]})
        body = frame[4:-6]
        await self.assertClosedAfter(struct.pack(">i", len(body)) + body)

    async def test_frame_cut_short_by_the_client(self):
        frame = encode_request(ApiKey.METADATA, 12, 1, "t", METADATA_ALL)

        def send_half():
            hostile = Connection(self.bootstrap)
            hostile.send_raw(frame[: len(frame) // 2])
            hostile.close()

        await in_thread(send_half)
        await self.assertStillServing()

    async def test_unknown_api_key(self):
        await self.assertClosedAfter(struct.pack(">ihhi", 10, 9999, 0, 1) + b"\xff\xff")

    async def test_unsupported_api_versions_version(self):
        def ask():
            conn = Connection(self.bootstrap)
            try:
                conn.send_raw(struct.pack(">ihhi", 10, ApiKey.API_VERSIONS, 99, 42) + b"\xff\xff")
                return conn.receive(ApiKey.API_VERSIONS, 0)
            finally:
                conn.close()

        correlation_id, body = await in_thread(ask)
        self.assertEqual(correlation_id, 42)
        self.assertEqual(body["error_code"], ErrorCode.UNSUPPORTED_VERSION)
        advertised = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
        self.assertEqual(advertised[ApiKey.API_VERSIONS], (0, 4))
        await self.assertStillServing()

    async def test_unsupported_version_of_a_known_api(self):
        await self.assertClosedAfter(struct.pack(">ihhi", 10, ApiKey.METADATA, 99, 1) + b"\xff\xff")

    async def test_api_without_a_handler(self):
        # ElectLeaders is in the schemas but not implemented: never a fake answer.
        frame = encode_request(ApiKey.ELECT_LEADERS, 0, 1, "t", {})
        await self.assertClosedAfter(frame)


class PipeliningTests(unittest.TestCase):
    async def setUp(self):
        self.service, self.bootstrap = await start_broker(self)

    async def test_answers_in_request_order(self):
        def pipeline():
            conn = Connection(self.bootstrap)
            try:
                frames = []
                for i in range(1, 31):
                    api = (ApiKey.API_VERSIONS, 3, {}) if i % 2 else (ApiKey.METADATA, 9, METADATA_ALL)
                    frames.append((api, encode_request(api[0], api[1], i, "t", api[2])))
                conn.send_raw(b"".join(frame for _, frame in frames))
                return [conn.receive(api[0], api[1])[0] for api, _ in frames]
            finally:
                conn.close()

        self.assertEqual(await in_thread(pipeline), list(range(1, 31)))


# The handlers these unit tests install use none of the broker's parts.
PARTLESS_BROKER = SimpleNamespace(topics=None, logs=None, view=None, groups=None, config=None, reactor=None,
                                  authorizer=None, acl_store=None, metadata=None, budget=BufferBudget(1 << 30),
                                  transactions=None, quotas=ClientQuotas(None), rewriter=None,
                                  broker_configs=None)


def produce_numbered(bootstrap, topic, count, **settings):
    """Send ``count`` numbered 100-byte records to partition 0 with a
    non-idempotent confluent-kafka producer pipelining many small requests
    (librdkafka's 0038_performance test, scaled down). -> the delivery
    errors."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 2,
                         "batch.num.messages": 50, "message.timeout.ms": 60000, **settings})
    errors = []

    def delivered(error, message):
        if error is not None:
            errors.append(error)

    for number in range(count):
        while True:
            try:
                producer.produce(topic, b"%012d" % number + b"x" * 88, partition=0, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    remaining = producer.flush(60)
    return errors + [f"{remaining} undelivered"] * bool(remaining)


def consumed_numbers(bootstrap, topic, count):
    """The numbers of partition 0's records, in offset order."""
    return [int(message.value()[:12]) for message in consume(bootstrap, topic, [0], count)]


class ProduceBackpressureTests(unittest.TestCase):
    """Real producers against full buffers and a slow or failing object
    store: a busy broker holds requests (reading nothing more from their
    connection) and never refuses them, so a non-idempotent producer with
    many requests in flight keeps its order."""

    count = 8000

    async def start(self, *args, store=None):
        """A broker with a 16 KiB partition buffer whose flushes put into
        ``store(its object store)``, and a topic of one partition. -> the
        store flushes put into."""
        self.broker, self.bootstrap = await start_broker(self, "--partition-buffer-bytes", "16384", *args)
        if store is not None:
            self.broker.flusher.objects = store(self.broker.flusher.objects)
        self.topic = "ordered"
        await create_topic(self.bootstrap, self.topic, 1)
        return self.broker.flusher.objects

    async def assertDeliveredInOrder(self, **settings):
        errors = await in_thread(produce_numbered, self.bootstrap, self.topic, self.count, **settings)
        self.assertEqual(errors, [])
        self.assertEqual(await in_thread(consumed_numbers, self.bootstrap, self.topic, self.count),
                         list(range(self.count)))

    async def test_acks_1_against_a_small_buffer(self):
        await self.start()
        # No retries: a busy broker must answer every request, late.
        await self.assertDeliveredInOrder(acks=1, retries=0)

    async def test_acks_all_against_a_small_buffer_and_a_slow_store(self):
        throttled = await self.start(store=lambda objects: Throttled(objects, 0.02))
        await self.assertDeliveredInOrder(acks="all", retries=0)
        self.assertGreater(throttled.puts, 10)

    async def test_acks_1_against_a_window_and_a_slow_store(self):
        await self.start("--flush-interval-ms", "50", store=lambda objects: Throttled(objects, 0.02))
        await self.assertDeliveredInOrder(acks=1, retries=0)

    async def test_a_failing_store_fails_requests_that_are_retried_in_order(self):
        # Three flushes fail once the producer has requests in flight.
        failing = await self.start(store=lambda objects: Failing(objects, 3, after=5))
        await self.assertDeliveredInOrder(acks=1)
        self.assertEqual(failing.failures, 0)

    async def test_a_consumer_is_answered_while_a_producer_is_held(self):
        throttled = await self.start(store=lambda objects: Throttled(objects, 0))
        await in_thread(produce_numbered, self.bootstrap, self.topic, 10, acks=1)
        throttled.hold()
        producing = in_thread(produce_numbered, self.bootstrap, self.topic, 5000, acks=1, retries=0)
        partition_log = self.broker.logs[self.topic, 0]
        await eventually(lambda: partition_log.holding, what="the producer held")
        # Another connection reads what was committed meanwhile.
        self.assertEqual(await in_thread(consumed_numbers, self.bootstrap, self.topic, 10), list(range(10)))
        self.assertTrue(partition_log.holding)
        throttled.release()
        self.assertEqual(await producing, [])
        self.assertEqual(await in_thread(consumed_numbers, self.bootstrap, self.topic, 5010),
                         list(range(10)) + list(range(5000)))


class OrderingUnitTests(unittest.TestCase):
    """KafkaProtocol alone: a later request that finishes first still waits
    for the earlier one's answer."""

    def test_slow_handler_holds_later_answers(self):
        from twisted.internet.defer import Deferred
        from twisted.internet.testing import StringTransport

        from kafscale.handlers.dispatch import HANDLERS, Handler
        from kafscale.server.protocol import KafkaFactory

        release = Deferred()

        async def slow_heartbeat(request):
            await release
            return {"error_code": ErrorCode.NONE}

        self.addCleanup(HANDLERS.update, HANDLERS.copy())
        HANDLERS[ApiKey.HEARTBEAT] = Handler(ApiKey.HEARTBEAT, 0, 4, slow_heartbeat)
        self.addCleanup(HANDLERS.clear)
        protocol = KafkaFactory(broker=PARTLESS_BROKER, max_request_size=1 << 20).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        heartbeat = {"group_id": "g", "generation_id": 1, "member_id": "m"}
        protocol.dataReceived(
            encode_request(ApiKey.HEARTBEAT, 4, 1, "t", heartbeat)
            + encode_request(ApiKey.API_VERSIONS, 3, 2, "t", {})
        )
        self.assertEqual(transport.value(), b"")
        release.callback(None)
        frames = transport.value()
        first_size, first_correlation = struct.unpack_from(">ii", frames)
        (second_correlation,) = struct.unpack_from(">i", frames, 4 + first_size + 4)
        self.assertEqual((first_correlation, second_correlation), (1, 2))

    def test_unencodable_answer_closes_the_connection(self):
        """A handler's body that does not encode is a broker bug like a
        handler that raises: logged, and the connection closed rather than
        left waiting for an answer that never comes."""
        from twisted.internet.testing import StringTransport

        from kafscale.handlers.dispatch import HANDLERS, Handler
        from kafscale.server.protocol import KafkaFactory

        async def garbled_heartbeat(request):
            return {"error_code": "none"}

        self.addCleanup(HANDLERS.update, HANDLERS.copy())
        HANDLERS[ApiKey.HEARTBEAT] = Handler(ApiKey.HEARTBEAT, 0, 4, garbled_heartbeat)
        self.addCleanup(HANDLERS.clear)
        protocol = KafkaFactory(broker=PARTLESS_BROKER, max_request_size=1 << 20).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        heartbeat = {"group_id": "g", "generation_id": 1, "member_id": "m"}
        protocol.dataReceived(encode_request(ApiKey.HEARTBEAT, 4, 1, "t", heartbeat))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.flushLoggedErrors(struct.error)), 1)


def _correlation_ids(frames):
    ids = []
    position = 0
    while position < len(frames):
        size, correlation_id = struct.unpack_from(">ii", frames, position)
        ids.append(correlation_id)
        position += 4 + size
    return ids


class _SlowTransport:
    """What a TCP transport does with a client that stops reading: unsent
    output beyond ``limit`` pauses the registered producer; draining it
    resumes the producer."""

    def __init__(self, limit):
        from twisted.internet.testing import StringTransport

        self.inner = StringTransport()
        self.limit = limit

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, data):
        self.inner.write(data)
        if len(self.inner.value()) > self.limit and self.inner.producer is not None:
            self.inner.producer.pauseProducing()

    def drain(self):
        data = self.inner.value()
        self.inner.clear()
        if self.inner.producer is not None:
            self.inner.producer.resumeProducing()
        return data


class BoundsUnitTests(unittest.TestCase):
    """KafkaProtocol alone: what one connection may cost is bounded."""

    heartbeat = {"group_id": "g", "generation_id": 1, "member_id": "m"}

    def handle_with(self, handle, **options):
        from kafscale.handlers.dispatch import HANDLERS, Handler

        self.addCleanup(HANDLERS.update, HANDLERS.copy())
        HANDLERS[ApiKey.HEARTBEAT] = Handler(ApiKey.HEARTBEAT, 0, 4, handle, **options)

    def connect(self, transport, broker=PARTLESS_BROKER, **options):
        from kafscale.server.protocol import KafkaFactory

        protocol = KafkaFactory(broker=broker, max_request_size=1 << 20, **options).buildProtocol(None)
        protocol.makeConnection(transport)
        return protocol

    def heartbeats(self, count):
        return b"".join(encode_request(ApiKey.HEARTBEAT, 4, i, "t", self.heartbeat) for i in range(count))

    def test_pipelined_burst_dispatched_only_up_to_the_in_flight_bound(self):
        from twisted.internet.defer import Deferred
        from twisted.internet.testing import StringTransport

        release = Deferred()
        started = []

        async def held_heartbeat(request):
            started.append(request.correlation_id)
            await release
            return {"error_code": ErrorCode.NONE}

        self.handle_with(held_heartbeat)
        transport = StringTransport()
        protocol = self.connect(transport, max_in_flight=100)
        protocol.dataReceived(self.heartbeats(150))
        self.assertEqual(len(started), 100)
        self.assertEqual(transport.producerState, "paused")
        release.callback(None)
        self.assertEqual(started, list(range(150)))
        self.assertEqual(transport.producerState, "producing")

    def test_a_client_that_does_not_read_stops_being_served(self):
        """Once its unsent output is over the bound, nothing more of what a
        client sends is read or answered until it reads."""
        answered = []

        async def heartbeat(request):
            answered.append(request.correlation_id)
            return {"error_code": ErrorCode.NONE}

        self.handle_with(heartbeat)
        transport = _SlowTransport(limit=40)
        protocol = self.connect(transport)
        protocol.dataReceived(self.heartbeats(10))
        # Each answer is 16 bytes: the third goes over the 40 bytes.
        self.assertEqual(answered, [0, 1, 2])
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(len(transport.drain()), 3 * 16)
        self.assertEqual(answered, [0, 1, 2, 3, 4, 5])
        transport.drain()
        transport.drain()
        self.assertEqual(answered, list(range(10)))
        self.assertEqual(transport.producerState, "producing")

    def test_a_held_request_stops_the_connection_until_released(self):
        from twisted.internet.defer import Deferred
        from twisted.internet.testing import StringTransport

        room = Deferred()
        started = []

        async def heartbeat(request):
            started.append(request.correlation_id)
            if request.correlation_id == 1:
                request.hold_reading(room)
            return {"error_code": ErrorCode.NONE}

        self.handle_with(heartbeat)
        transport = StringTransport()
        protocol = self.connect(transport)
        protocol.dataReceived(self.heartbeats(5))
        self.assertEqual(started, [0, 1])
        self.assertEqual(transport.producerState, "paused")
        room.callback(None)
        self.assertEqual(started, [0, 1, 2, 3, 4])
        self.assertEqual(transport.producerState, "producing")

    def test_unsent_answers_count_against_the_broker_budget(self):
        budget = BufferBudget(1 << 20)
        broker = SimpleNamespace(**{**vars(PARTLESS_BROKER), "budget": budget})

        async def heartbeat(request):
            return {"error_code": ErrorCode.NONE}

        self.handle_with(heartbeat)
        transport = _SlowTransport(limit=40)
        protocol = self.connect(transport, broker=broker)
        protocol.dataReceived(self.heartbeats(2))
        # Written into a transport with room: on their way.
        self.assertEqual(budget.used, 0)
        protocol.dataReceived(self.heartbeats(2))
        # The third 16-byte answer fills the transport: it counts until the
        # client reads (and the fourth waits undispatched).
        self.assertEqual(budget.used, 16)
        transport.drain()
        self.assertEqual(budget.used, 0)
        protocol.dataReceived(self.heartbeats(4))
        self.assertGreater(budget.used, 0)
        protocol.connectionLost(None)
        self.assertEqual(budget.used, 0)

    def test_closing_when_answered_does_not_wait_for_a_reader(self):
        async def heartbeat(request):
            return {"error_code": ErrorCode.NONE}

        self.handle_with(heartbeat)
        transport = _SlowTransport(limit=10)
        protocol = self.connect(transport)
        protocol.dataReceived(self.heartbeats(2))
        self.assertEqual(transport.producerState, "paused")
        protocol.close_when_answered()
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)

    def test_large_answers_are_under_way_one_at_a_time(self):
        from twisted.internet.defer import Deferred
        from twisted.internet.testing import StringTransport

        releases = []

        async def large_heartbeat(request):
            release = Deferred()
            releases.append(release)
            await release
            return {"error_code": ErrorCode.NONE}

        self.handle_with(large_heartbeat, answer_bytes=lambda body: 10 << 20)
        transport = StringTransport()
        protocol = self.connect(transport)
        protocol.dataReceived(self.heartbeats(3))
        self.assertEqual(len(releases), 1)
        self.assertEqual(transport.producerState, "paused")
        releases[0].callback(None)
        self.assertEqual(len(releases), 2)
        releases[1].callback(None)
        releases[2].callback(None)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(_correlation_ids(transport.value()), [0, 1, 2])

    def test_long_poll_cancelled_when_its_connection_closes(self):
        from twisted.internet.defer import CancelledError, Deferred
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        outcome = []

        async def long_poll(request):
            try:
                await Deferred()
            except CancelledError:
                outcome.append("cancelled")
                raise

        self.handle_with(long_poll, cancel_on_close=True)
        protocol = self.connect(StringTransport())
        protocol.dataReceived(self.heartbeats(1))
        protocol.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(outcome, ["cancelled"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_connections_limited_in_all_and_per_address(self):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        from kafscale.server.protocol import KafkaFactory

        factory = KafkaFactory(broker=PARTLESS_BROKER, max_request_size=1 << 20, max_connections=3,
                               max_connections_per_address=2)

        def connect(host):
            protocol = factory.buildProtocol(IPv4Address("TCP", host, 5000))
            if protocol is not None:
                protocol.makeConnection(StringTransport())
            return protocol

        first, second = connect("10.0.0.1"), connect("10.0.0.1")
        self.assertIsNone(connect("10.0.0.1"))
        third = connect("10.0.0.2")
        self.assertIsNotNone(third)
        self.assertIsNone(connect("10.0.0.3"))
        first.connectionLost(Failure(ConnectionError("gone")))
        self.assertIsNotNone(connect("10.0.0.1"))
        self.assertIsNone(connect("10.0.0.1"))


class ConnectionLimitTests(unittest.TestCase):
    async def test_connections_beyond_the_limit_are_closed(self):
        _, bootstrap = await start_broker(self, "--max-connections", "2")

        def connect_three():
            kept = [Connection(bootstrap), Connection(bootstrap)]
            try:
                for conn in kept:
                    conn.request(ApiKey.API_VERSIONS, 3, {})
                extra = Connection(bootstrap)
                try:
                    return extra.closed_by_peer()
                finally:
                    extra.close()
            finally:
                for conn in kept:
                    conn.close()

        self.assertTrue(await in_thread(connect_three))

    def test_default_leaves_file_descriptors_for_the_stores(self):
        import resource

        from kafscale.config import BrokerConfig
        from kafscale.tap import FILE_DESCRIPTORS_KEPT, connection_limit

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertEqual(connection_limit(BrokerConfig()), soft - FILE_DESCRIPTORS_KEPT)
        self.assertEqual(connection_limit(BrokerConfig(max_connections=7)), 7)


class DecodingBoundsTests(unittest.TestCase):
    """KafkaProtocol alone: the work of decoding a request is bounded."""

    def connect(self, **bounds):
        from twisted.internet.testing import StringTransport

        from kafscale.server.protocol import KafkaFactory

        protocol = KafkaFactory(broker=PARTLESS_BROKER, max_request_size=8 << 20).buildProtocol(None)
        for name, value in bounds.items():
            setattr(protocol, name, value)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def hold_metadata(self):
        """Replace the Metadata handler by one that waits: -> (names of the
        topics each request named, the Deferreds releasing them)."""
        from twisted.internet.defer import Deferred

        from kafscale.handlers.dispatch import HANDLERS, Handler

        named, releases = [], []

        async def held_metadata(request):
            named.append([topic["name"] for topic in request.body["topics"]])
            release = Deferred()
            releases.append(release)
            await release
            return {"brokers": [], "topics": []}

        self.addCleanup(HANDLERS.update, HANDLERS.copy())
        HANDLERS[ApiKey.METADATA] = Handler(ApiKey.METADATA, 0, 12, held_metadata)
        return named, releases

    def metadata_frame(self, correlation_id, count):
        return encode_request(ApiKey.METADATA, 4, correlation_id, "t", {
            "topics": [{"name": f"t{i}"} for i in range(count)], "allow_auto_topic_creation": False})

    def test_a_request_naming_too_many_things_closes_the_connection(self):
        named, _ = self.hold_metadata()
        protocol, transport = self.connect(max_request_elements=10)
        protocol.dataReceived(self.metadata_frame(1, 10))
        self.assertEqual(len(named), 1)
        protocol.dataReceived(self.metadata_frame(2, 11))
        self.assertEqual(len(named), 1)
        self.assertTrue(transport.disconnecting)

    def test_requests_under_way_hold_a_bounded_number_of_elements(self):
        named, releases = self.hold_metadata()
        protocol, transport = self.connect(max_request_elements=10)
        protocol.dataReceived(self.metadata_frame(1, 6) + self.metadata_frame(2, 6) + self.metadata_frame(3, 2))
        self.assertEqual([len(names) for names in named], [6])
        self.assertEqual(transport.producerState, "paused")
        releases[0].callback(None)
        self.assertEqual([len(names) for names in named], [6, 6, 2])
        releases[1].callback(None)
        releases[2].callback(None)
        self.assertEqual(_correlation_ids(transport.value()), [1, 2, 3])
        self.assertEqual(transport.producerState, "producing")

    async def test_large_frames_are_decoded_off_the_reactor(self):
        from tests.support.waiting import eventually

        named, releases = self.hold_metadata()
        protocol, transport = self.connect(decode_inline_below=1000)
        protocol.dataReceived(self.metadata_frame(1, 500) + self.metadata_frame(2, 3))
        # Neither started yet: the first is being decoded in a thread and
        # the second waits for it, to keep the order.
        self.assertEqual(named, [])
        await eventually(lambda: len(named) == 2)
        self.assertEqual([len(names) for names in named], [500, 3])
        for release in releases:
            release.callback(None)
        self.assertEqual(_correlation_ids(transport.value()), [1, 2])

    async def test_answers_to_large_requests_are_encoded_off_the_reactor(self):
        from kafscale.handlers.dispatch import HANDLERS, Handler
        from tests.support.waiting import eventually

        async def metadata(request):
            return {"brokers": [], "topics": [{"name": topic["name"], "partitions": []}
                                              for topic in request.body["topics"]]}

        self.addCleanup(HANDLERS.update, HANDLERS.copy())
        HANDLERS[ApiKey.METADATA] = Handler(ApiKey.METADATA, 0, 12, metadata)
        protocol, transport = self.connect(encode_inline_below=100)
        protocol.dataReceived(self.metadata_frame(1, 3) + self.metadata_frame(2, 500) + self.metadata_frame(3, 3))
        # The first answered at once; the third waits for the second's.
        self.assertEqual(_correlation_ids(transport.value()), [1])
        await eventually(lambda: len(_correlation_ids(transport.value())) == 3)
        self.assertEqual(_correlation_ids(transport.value()), [1, 2, 3])


class QuotaTests(unittest.TestCase):
    """Client quotas throttle a connection: its answers say for how long,
    and nothing more is read from it meanwhile."""

    async def test_a_producer_is_throttled_to_its_byte_rate(self):
        broker, bootstrap = await start_broker(self, "--quota-window-num", "2", "--quota-window-size-seconds", "1")
        await broker.topics.create("metered", 1, {})
        quota = 256 << 10
        await broker.quotas.alter_client_quotas([((("client-id", "metered"),), {"producer_byte_rate": quota})])
        value = b"x" * (16 << 10)
        seconds = 4.0

        def produce_for_a_while():
            throttled = []
            producer = Producer({"bootstrap.servers": bootstrap, "client.id": "metered", "linger.ms": 5,
                                 "batch.num.messages": 4,
                                 "throttle_cb": lambda event: throttled.append(event.throttle_time)})
            delivered = []
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                try:
                    producer.produce("metered", value, on_delivery=lambda e, m: e or delivered.append(len(m)))
                except BufferError:
                    pass
                producer.poll(0.001)
            acknowledged = sum(delivered)
            producer.purge()
            producer.flush(10)
            return acknowledged, throttled

        acknowledged, throttled = await in_thread(produce_for_a_while)
        rate = acknowledged / seconds
        # One window's burst beyond the quota is allowed before the
        # throttling starts, as in Kafka.
        self.assertGreater(rate, 0.5 * quota)
        self.assertLess(rate, 1.6 * quota, f"{rate / 1024:.0f} KiB/s against a quota of {quota / 1024:.0f} KiB/s")
        self.assertTrue(throttled, "no throttle time reported")
        # Another client id is not held back.
        await in_thread(produce, bootstrap, "metered", [(None, value, None, None)] * 64, **{"client.id": "free"})
