"""
The etcd client against real etcd 3.5 and 3.4 servers (see tests/support/etcd_server.py).
"""

import json
import os
import random

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from kafscale.etcd.client import (
    Compare,
    DeleteResult,
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdFutureRevision,
    EtcdInvalidRequest,
    EtcdUnavailable,
    LeaseNotFound,
    Op,
    PutResult,
    RangeResult,
    _JSONStream,
    prefix_range_end,
)
from tests.support.etcd_server import EtcdTestMixin
from tests.support.faults import TcpProxy
from tests.support.waiting import eventually, sleep


def _async(coroutine):
    return Deferred.fromCoroutine(coroutine)


class EventLog:
    """A watch callback that records what it is given."""

    def __init__(self):
        self.batches = []
        self.compacted = []

    def __call__(self, events, revision):
        self.batches.append((events, revision))

    def on_compacted(self, revision):
        self.compacted.append(revision)

    @property
    def events(self):
        return [event for events, _ in self.batches for event in events]


class _Silent(Protocol):
    """Accepts a connection and never answers."""


class _Hangup(Protocol):
    def connectionMade(self):
        self.factory.connections += 1
        self.transport.loseConnection()


def _free_refused_port():
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    number = port.getHost().port
    port.stopListening()
    return number


class PrefixRangeEndTests(SynchronousTestCase):
    def test_increments_last_byte(self):
        self.assertEqual(prefix_range_end(b"/topics/"), b"/topics0")

    def test_carries_over_0xff(self):
        self.assertEqual(prefix_range_end(b"a\xff\xff"), b"b")

    def test_all_0xff_means_end_of_keyspace(self):
        self.assertEqual(prefix_range_end(b"\xff"), b"\0")


class JSONStreamTests(SynchronousTestCase):
    """The watch stream parser on every way reads can cut documents."""

    def parse(self, chunks):
        documents = []
        stream = _JSONStream(documents.append)
        for chunk in chunks:
            stream.dataReceived(chunk)
        return documents

    def test_any_split(self):
        documents = [{"result": {"n": n, "text": "é}" * n, "blob": "QUJD" * 1000 * n}}
                     for n in range(5)]
        data = b"".join(json.dumps(document).encode() + b"\n" for document in documents)
        randomness = random.Random(7)
        for _ in range(50):
            cuts = sorted(randomness.sample(range(1, len(data)), 30))
            chunks = [data[start:end]
                      for start, end in zip([0] + cuts, cuts + [len(data)], strict=True)]
            self.assertEqual(self.parse(chunks), documents)

    def test_several_documents_in_one_read(self):
        self.assertEqual(self.parse([b'{"a":1}\n{"b":"\xc3', b'\xa9"}\n{"c"', b":3}\n"]),
                         [{"a": 1}, {"b": "\u00e9"}, {"c": 3}])


class EtcdClientTestsMixin(EtcdTestMixin):
    def setUp(self):
        super().setUp()
        self.client = self.make_client(self.endpoint)

    def make_client(self, endpoints, **options):
        client = EtcdClient(endpoints, **options)
        self.addCleanup(lambda: _async(client.close()))
        return client

    def key(self, name):
        return self.prefix + name.encode()

    def watch(self, key, client=None, **options):
        log = EventLog()
        watch = (client or self.client).watch(
            key, callback=log, on_compacted=log.on_compacted, **options)
        self.addCleanup(lambda: _async(watch.stop()))
        return watch, log

    # key-value

    async def test_put_get(self):
        value = bytes(range(256))
        first = await self.client.put(self.key("k"), value)
        self.assertIsInstance(first, PutResult)
        kv = await self.client.get(self.key("k"))
        self.assertEqual((kv.key, kv.value, kv.version, kv.lease), (self.key("k"), value, 1, 0))
        self.assertEqual(kv.create_revision, first.header_revision)
        self.assertEqual(kv.mod_revision, first.header_revision)
        second = await self.client.put(self.key("k"), b"", prev_kv=True)
        self.assertEqual(second.prev_kv.value, value)
        kv = await self.client.get(self.key("k"))
        self.assertEqual((kv.value, kv.version, kv.create_revision, kv.mod_revision),
                         (b"", 2, first.header_revision, second.header_revision))
        self.assertIsNone(await self.client.get(self.key("missing")))

    async def test_range_prefix_limit_and_flags(self):
        for name in ["d", "a", "c", "b", "e"]:
            await self.client.put(self.key("p/" + name), name.encode() * 3)
        await self.client.put(self.key("p0"), b"outside the prefix")
        everything = await self.client.range(self.key("p/"), prefix=True)
        self.assertIsInstance(everything, RangeResult)
        self.assertEqual([kv.key for kv in everything.kvs],
                         [self.key("p/" + name) for name in "abcde"])
        self.assertEqual((everything.count, everything.more), (5, False))
        first_two = await self.client.range(self.key("p/"), prefix=True, limit=2)
        self.assertEqual([kv.value for kv in first_two.kvs], [b"aaa", b"bbb"])
        self.assertEqual((first_two.count, first_two.more), (5, True))
        between = await self.client.range(self.key("p/b"), self.key("p/d"))
        self.assertEqual([kv.value for kv in between.kvs], [b"bbb", b"ccc"])
        keys = await self.client.range(self.key("p/"), prefix=True, keys_only=True)
        self.assertEqual([kv.value for kv in keys.kvs], [b""] * 5)
        self.assertEqual(keys.kvs[0].key, self.key("p/a"))
        counted = await self.client.range(self.key("p/"), prefix=True, count_only=True)
        self.assertEqual((counted.kvs, counted.count), ([], 5))

    async def test_range_at_revision(self):
        old = await self.client.put(self.key("k"), b"old")
        await self.client.put(self.key("k"), b"new")
        past = await self.client.range(self.key("k"), revision=old.header_revision)
        self.assertEqual([kv.value for kv in past.kvs], [b"old"])
        self.assertGreater(past.header_revision, old.header_revision)

    async def test_delete(self):
        for name in ["a", "b", "c", "d"]:
            await self.client.put(self.key(name), name.encode())
        one = await self.client.delete(self.key("a"), prev_kv=True)
        self.assertIsInstance(one, DeleteResult)
        self.assertEqual((one.deleted, [kv.value for kv in one.prev_kvs]), (1, [b"a"]))
        ranged = await self.client.delete(self.key("b"), range_end=self.key("d"))
        self.assertEqual((ranged.deleted, ranged.prev_kvs), (2, []))
        self.assertEqual((await self.client.delete(self.key("a"))).deleted, 0)
        rest = await self.client.delete(self.prefix, prefix=True)
        self.assertEqual(rest.deleted, 1)
        self.assertEqual((await self.client.range(self.prefix, prefix=True)).count, 0)

    async def test_empty_key_is_refused_before_sending(self):
        with self.assertRaises(ValueError):
            await self.client.put(b"", b"v")

    # transactions

    async def test_txn_branches_and_op_results(self):
        key = self.key("owner")
        create = await self.client.txn(
            [Compare.version(key, "=", 0)],
            success=[Op.put(key, b"broker-1"), Op.range(key), Op.delete(self.key("none"))],
            failure=[Op.range(key)])
        self.assertTrue(create.succeeded)
        put, read, delete = create.responses
        self.assertIsInstance(put, PutResult)
        self.assertEqual([kv.value for kv in read.kvs], [b"broker-1"])
        self.assertEqual(delete.deleted, 0)
        self.assertEqual(put.header_revision, create.header_revision)

        again = await self.client.txn(
            [Compare.version(key, "=", 0)],
            success=[Op.put(key, b"broker-2")],
            failure=[Op.range(key, keys_only=True), Op.delete(key, prev_kv=True)])
        self.assertFalse(again.succeeded)
        read, delete = again.responses
        self.assertEqual([kv.key for kv in read.kvs], [key])
        self.assertEqual([kv.value for kv in delete.prev_kvs], [b"broker-1"])
        self.assertIsNone(await self.client.get(key))

    async def test_txn_compare_targets(self):
        key = self.key("k")
        lease = await self.client.lease_grant(30)
        self.addCleanup(lambda: _async(self.client.lease_revoke(lease.id)))
        first = await self.client.put(key, b"v1")
        second = await self.client.put(key, b"v2", lease=lease.id)

        async def holds(condition):
            return (await self.client.txn([condition])).succeeded

        cases = [
            (Compare.value(key, "=", b"v2"), True),
            (Compare.value(key, "=", b"v1"), False),
            (Compare.value(key, "!=", b"v1"), True),
            (Compare.value(key, ">", b"v1"), True),
            (Compare.value(key, "<", b"v1"), False),
            (Compare.version(key, "=", 2), True),
            (Compare.version(key, ">", 2), False),
            (Compare.version(key, "<", 3), True),
            (Compare.create_revision(key, "=", first.header_revision), True),
            (Compare.create_revision(key, "!=", first.header_revision), False),
            (Compare.mod_revision(key, "=", second.header_revision), True),
            (Compare.mod_revision(key, "<", second.header_revision), False),
            (Compare.mod_revision(key, ">", first.header_revision), True),
            (Compare.lease(key, "=", lease.id), True),
            (Compare.lease(key, "=", 0), False),
            (Compare.lease(key, "!=", 0), True),
            (Compare.version(self.key("absent"), "=", 0), True),
            (Compare.mod_revision(self.key("absent"), ">", 0), False),
        ]
        for condition, expected in cases:
            self.assertEqual(await holds(condition), expected, condition)

    def test_compare_refuses_unknown_operator(self):
        self.assertRaises(ValueError, Compare.version, b"k", "==", 1)

    # leases

    async def test_lease_grant_returns_the_granted_ttl(self):
        # etcd raises a TTL below its minimum (1 s with the test settings).
        lease = await self.client.lease_grant(0)
        self.addCleanup(lambda: _async(self.client.lease_revoke(lease.id)))
        self.assertGreaterEqual(lease.ttl, 1)
        status = await self.client.lease_time_to_live(lease.id)
        self.assertEqual((status.id, status.granted_ttl), (lease.id, lease.ttl))
        chosen = await self.client.lease_grant(30, lease_id=lease.id + 1)
        self.addCleanup(lambda: _async(self.client.lease_revoke(chosen.id)))
        self.assertEqual((chosen.id, chosen.ttl), (lease.id + 1, 30))

    async def test_lease_keepalive_and_attached_keys(self):
        lease = await self.client.lease_grant(10)
        self.addCleanup(lambda: _async(self.client.lease_revoke(lease.id)))
        await self.client.put(self.key("a"), b"1", lease=lease.id)
        await self.client.put(self.key("b"), b"2", lease=lease.id)
        self.assertEqual(await self.client.lease_keepalive(lease.id), 10)
        status = await self.client.lease_time_to_live(lease.id, keys=True)
        self.assertEqual(sorted(status.keys), [self.key("a"), self.key("b")])
        self.assertTrue(0 < status.ttl <= 10)
        self.assertEqual((await self.client.get(self.key("a"))).lease, lease.id)

    async def test_lease_expiry_deletes_attached_keys(self):
        lease = await self.client.lease_grant(1)
        await self.client.put(self.key("ephemeral"), b"x", lease=lease.id)
        await eventually(lambda: self._gone(self.key("ephemeral")), timeout=5)
        self.assertIsNone(await self.client.get(self.key("ephemeral")))
        with self.assertRaises(LeaseNotFound):
            await self.client.lease_keepalive(lease.id)
        with self.assertRaises(LeaseNotFound):
            await self.client.lease_time_to_live(lease.id)

    async def _gone(self, key):
        return await self.client.get(key) is None

    async def test_lease_revoke_deletes_attached_keys(self):
        lease = await self.client.lease_grant(30)
        await self.client.put(self.key("k"), b"x", lease=lease.id)
        await self.client.lease_revoke(lease.id)
        self.assertIsNone(await self.client.get(self.key("k")))
        with self.assertRaises(LeaseNotFound) as raised:
            await self.client.lease_revoke(lease.id)
        self.assertEqual(raised.exception.status, 404)

    # watches

    async def test_watch_delivers_typed_events(self):
        watch, log = self.watch(self.prefix, prefix=True, prev_kv=True)
        await watch.ready()
        await self.client.put(self.key("a"), b"1")
        await self.client.put(self.key("a"), b"2")
        deleted = await self.client.delete(self.key("a"))
        await eventually(lambda: len(log.events) == 3, timeout=5)
        self.assertEqual([(event.type, event.kv.key, event.kv.value) for event in log.events],
                         [("PUT", self.key("a"), b"1"), ("PUT", self.key("a"), b"2"),
                          ("DELETE", self.key("a"), b"")])
        self.assertIsNone(log.events[0].prev_kv)
        self.assertEqual(log.events[1].prev_kv.value, b"1")
        self.assertEqual(log.events[2].prev_kv.value, b"2")
        self.assertEqual(log.events[2].kv.mod_revision, deleted.header_revision)
        self.assertEqual(log.batches[-1][1], deleted.header_revision)
        self.assertEqual(watch.next_revision, deleted.header_revision + 1)

    async def test_watch_survives_a_failing_callback(self):
        seen = []

        def callback(events, revision):
            seen.extend(events)
            raise RuntimeError("a bug in the caller")

        watch = self.client.watch(self.prefix, prefix=True, callback=callback,
                                  on_compacted=self.fail)
        self.addCleanup(lambda: _async(watch.stop()))
        await watch.ready()
        await self.client.put(self.key("a"), b"1")
        await eventually(lambda: seen, timeout=5)
        await self.client.put(self.key("b"), b"2")
        await eventually(lambda: len(seen) == 2, timeout=5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    async def test_watch_single_key_ignores_others(self):
        watch, log = self.watch(self.key("a"))
        await watch.ready()
        await self.client.put(self.key("ab"), b"no")
        await self.client.put(self.key("a"), b"yes")
        await eventually(lambda: log.events, timeout=5)
        await self.client.put(self.key("a"), b"again")
        await eventually(lambda: len(log.events) == 2, timeout=5)
        self.assertEqual([event.kv.value for event in log.events], [b"yes", b"again"])

    async def test_watch_delivers_a_large_value_intact(self):
        value = os.urandom(1024 * 1024)
        watch, log = self.watch(self.prefix, prefix=True)
        await watch.ready()
        await self.client.put(self.key("big"), value)
        await self.client.put(self.key("small"), b"after")
        await eventually(lambda: len(log.events) == 2, timeout=5)
        self.assertEqual(log.events[0].kv.value, value)
        self.assertEqual(log.events[1].kv.value, b"after")

    async def test_watch_delivers_a_burst_in_order(self):
        watch, log = self.watch(self.prefix, prefix=True)
        await watch.ready()
        await gatherResults([_async(self.client.put(self.key(f"k{n:03d}"), b"%d" % n))
                             for n in range(200)])
        await eventually(lambda: len(log.events) == 200, timeout=5)
        revisions = [event.kv.mod_revision for event in log.events]
        self.assertEqual(revisions, sorted(set(revisions)))
        self.assertEqual({event.kv.key for event in log.events},
                         {self.key(f"k{n:03d}") for n in range(200)})

    async def test_watch_replays_from_start_revision(self):
        first = await self.client.put(self.key("a"), b"1")
        await self.client.put(self.key("b"), b"2")
        _, log = self.watch(self.prefix, prefix=True, start_revision=first.header_revision)
        await eventually(lambda: len(log.events) == 2, timeout=5)
        self.assertEqual([event.kv.value for event in log.events], [b"1", b"2"])

    async def test_watch_reports_compaction(self):
        first = await self.client.put(self.key("a"), b"1")
        latest = await self.client.put(self.key("a"), b"2")
        await self.client.compact(latest.header_revision)
        _, log = self.watch(self.key("a"), start_revision=first.header_revision)
        await eventually(lambda: log.compacted, timeout=5)
        self.assertEqual(log.compacted, [latest.header_revision])
        self.assertEqual(log.events, [])
        with self.assertRaises(EtcdCompacted):
            await self.client.range(self.key("a"), revision=first.header_revision)

    async def test_watch_resumes_after_etcd_restarts(self):
        server = self.private_server()
        client = self.make_client(server.endpoint, timeout=1)
        watch, log = self.watch(b"/w/", client=client, prefix=True)
        await watch.ready()
        await client.put(b"/w/1", b"before")
        await eventually(lambda: len(log.events) == 1, timeout=5)
        server.stop()
        # Long enough for the watch's retries to back off to about a second,
        # so the puts below most likely land before it reconnects.
        await sleep(1)
        server.start()
        for n in range(2, 6):
            await client.put(b"/w/%d" % n, b"after")
        await eventually(lambda: len(log.events) == 5, timeout=10)
        await client.put(b"/w/6", b"last")
        await eventually(lambda: len(log.events) == 6, timeout=5)
        self.assertEqual([event.kv.key for event in log.events],
                         [b"/w/%d" % n for n in range(1, 7)])

    async def test_a_watch_whose_stream_hangs_silently_catches_up(self):
        host, port = self.endpoint.removeprefix("http://").rsplit(":", 1)
        proxy = TcpProxy(host, int(port))
        await proxy.start()
        self.addCleanup(proxy.close)
        client = self.make_client(proxy.endpoint, watch_silence=1.0)
        watch, log = self.watch(self.key("w/"), client=client, prefix=True)
        await watch.ready()
        proxy.blackhole()  # the event below vanishes; the stream stays open
        await self.client.put(self.key("w/1"), b"lost in the partition")
        await sleep(0.2)
        proxy.let_through()
        await eventually(lambda: len(log.events) == 1, timeout=5)
        self.assertEqual(log.events[0].kv.key, self.key("w/1"))

    async def test_watch_stop_delivers_nothing_more(self):
        watch, log = self.watch(self.prefix, prefix=True)
        await watch.ready()
        await self.client.put(self.key("a"), b"1")
        await eventually(lambda: log.events, timeout=5)
        await watch.stop()
        await self.client.put(self.key("a"), b"2")
        await sleep(0.1)
        self.assertEqual(len(log.events), 1)
        await watch.stop()

    async def test_watch_stop_before_created_and_while_retrying(self):
        connecting, _ = self.watch(self.prefix, prefix=True)
        await connecting.stop()
        dead = self.make_client(f"http://127.0.0.1:{_free_refused_port()}")
        retrying, _ = self.watch(self.prefix, client=dead, prefix=True)
        await sleep(0.2)
        await retrying.stop()

    # endpoints and failures

    async def test_failover_to_a_live_endpoint(self):
        refused = f"http://127.0.0.1:{_free_refused_port()}"
        client = self.make_client(f"{refused},{self.endpoint}")
        await client.put(self.key("k"), b"v")
        self.assertEqual((await client.get(self.key("k"))).value, b"v")
        watch, log = self.watch(self.key("k"), client=client)
        await watch.ready()
        await self.client.put(self.key("k"), b"w")
        await eventually(lambda: log.events, timeout=5)

    async def test_failover_remembers_the_endpoint_that_worked(self):
        hangup = Factory.forProtocol(_Hangup)
        hangup.connections = 0
        port = reactor.listenTCP(0, hangup, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = self.make_client([f"http://127.0.0.1:{port.getHost().port}", self.endpoint])
        await client.put(self.key("k"), b"v")
        # A connection dropped before any answer is tried once more, then
        # the next endpoint; the one that worked is used from then on.
        self.assertEqual(hangup.connections, 2)
        for _ in range(3):
            await client.get(self.key("k"))
        self.assertEqual(hangup.connections, 2)

    async def test_every_endpoint_dead(self):
        client = self.make_client([f"http://127.0.0.1:{_free_refused_port()}",
                                   f"http://127.0.0.1:{_free_refused_port()}"])
        with self.assertRaises(EtcdUnavailable):
            await client.get(self.key("k"))

    async def test_timeout(self):
        port = reactor.listenTCP(0, Factory.forProtocol(_Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = self.make_client(f"http://127.0.0.1:{port.getHost().port}", timeout=0.2)
        started = reactor.seconds()
        with self.assertRaises(EtcdUnavailable):
            await client.get(self.key("k"))
        self.assertLess(reactor.seconds() - started, 2)

    async def test_error_mapping(self):
        current = (await self.client.put(self.key("k"), b"v")).header_revision
        with self.assertRaises(EtcdFutureRevision):
            await self.client.range(self.key("k"), revision=current + 1000)
        with self.assertRaises(EtcdInvalidRequest) as raised:
            await self.client.txn([], success=[Op.put(self.key("k"), b"1"),
                                               Op.put(self.key("k"), b"2")])
        self.assertEqual((raised.exception.code, raised.exception.status), (3, 400))
        with self.assertRaises(LeaseNotFound):
            await self.client.lease_keepalive(0x7EADBEEF)
        with self.assertRaises(EtcdError) as raised:
            await self.client.lease_grant(10**12)
        self.assertIn("too large lease TTL", str(raised.exception))
        with self.assertRaises(EtcdError) as raised:
            await self.client._call("/v3alpha/kv/range", {"key": "aw=="})
        self.assertEqual(raised.exception.status, 404)


class Etcd35ClientTests(EtcdClientTestsMixin, TestCase):
    flavour = "3.5"


class Etcd34ClientTests(EtcdClientTestsMixin, TestCase):
    flavour = "3.4"
