"""LeaseKeeper against real etcd 3.5 and 3.4 servers: it keeps a lease
alive, and reports the lease lost when etcd drops it or cannot be reached
before its deadline."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from kafscale.etcd.client import EtcdClient, EtcdUnavailable, LeaseNotFound
from kafscale.etcd.lease import LeaseKeeper
from tests.support.etcd_server import EtcdTestMixin
from tests.support.faults import TcpProxy
from tests.support.waiting import eventually, sleep


class LeaseKeeperTestsMixin(EtcdTestMixin):
    def setUp(self):
        super().setUp()
        self.client = self.raw_client()

    def make_client(self, endpoints, **options):
        client = EtcdClient(endpoints, **options)
        self.addCleanup(lambda: Deferred.fromCoroutine(client.close()))
        return client

    def key(self, name):
        return self.prefix + name.encode()

    async def test_lease_keeper_keeps_the_lease(self):
        losses = []
        keeper = LeaseKeeper(self.client, 1, losses.append)
        lease = await keeper.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(keeper.stop()))
        await self.client.put(self.key("k"), b"x", lease=lease.id)
        await sleep(2.5)
        self.assertEqual(losses, [])
        self.assertTrue(keeper.alive())
        self.assertLessEqual(keeper.deadline, reactor.seconds() + lease.ttl)
        self.assertGreater(keeper.deadline, reactor.seconds())
        self.assertIsNotNone(await self.client.get(self.key("k")))
        await keeper.stop()
        self.assertFalse(keeper.alive())
        self.assertIsNone(await self.client.get(self.key("k")))
        with self.assertRaises(LeaseNotFound):
            await self.client.lease_time_to_live(lease.id)

    async def test_lease_keeper_reports_a_lease_that_vanished(self):
        losses = []
        keeper = LeaseKeeper(self.client, 3, losses.append)
        lease = await keeper.start()
        await self.client.lease_revoke(lease.id)
        await eventually(lambda: losses, timeout=3)
        self.assertIsInstance(losses[0], LeaseNotFound)
        self.assertTrue(keeper.lost)
        self.assertFalse(keeper.alive())
        await keeper.stop()
        self.assertEqual(len(losses), 1)

    async def test_lease_keeper_reports_loss_at_the_deadline_when_etcd_is_gone(self):
        server = self.private_server()
        client = self.make_client(server.endpoint, timeout=0.5)
        losses = []
        keeper = LeaseKeeper(client, 1, losses.append)
        await keeper.start()
        await sleep(0.5)
        server.stop()
        deadline = keeper.deadline
        self.assertTrue(keeper.alive())
        await eventually(lambda: losses, timeout=3)
        self.assertGreaterEqual(reactor.seconds(), deadline)
        self.assertLess(reactor.seconds(), deadline + 0.5)
        self.assertIsInstance(losses[0], EtcdUnavailable)
        self.assertFalse(keeper.alive())

    async def test_a_keepalive_lost_in_a_partition_costs_not_the_lease(self):
        host, port = self.endpoint.removeprefix("http://").rsplit(":", 1)
        proxy = TcpProxy(host, int(port))
        await proxy.start()
        self.addCleanup(proxy.close)
        losses = []
        # The client's own timeout (5 s) is longer than the lease.
        keeper = LeaseKeeper(self.make_client(proxy.endpoint), 3, losses.append)
        lease = await keeper.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(keeper.stop()))
        first_deadline = keeper.deadline
        await sleep(lease.ttl / 3 - 0.2)
        proxy.blackhole()  # the next renewal vanishes, and its retries for a while
        await sleep(1.0)
        proxy.let_through()
        await sleep(first_deadline - reactor.seconds() + 0.5)
        self.assertEqual(losses, [])
        self.assertTrue(keeper.alive())
        self.assertGreater(keeper.deadline, first_deadline)


class Etcd35LeaseKeeperTests(LeaseKeeperTestsMixin, TestCase):
    flavour = "3.5"


class Etcd34LeaseKeeperTests(LeaseKeeperTestsMixin, TestCase):
    flavour = "3.4"
