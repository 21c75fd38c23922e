"""Cluster membership on a real etcd: registration, the shared views,
rendezvous assignment, owner keys and coordinator slots, with several
Cluster objects in this process standing for several brokers."""

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from kafscale.etcd.cluster import FIRST_ALLOCATED_NODE_ID, Cluster, partition_name, rendezvous
from kafscale.metadata.interfaces import MetadataUnavailable, NodeIdInUse, OwnedElsewhere
from kafscale.metadata.view import SLOTS, IClusterView, slot_of
from tests.support.etcd_server import EtcdTestMixin
from tests.support.waiting import eventually

# How long a test waits for every member to see a change another made:
# it happens within milliseconds (bench/cluster.py measures how soon), but a
# loaded machine must not fail a test of whether it happens.
VIEW_WITHIN = 5.0


class RendezvousTests(SynchronousTestCase):
    names = tuple(partition_name("events", partition) for partition in range(600))

    def test_deterministic_and_spread(self):
        owners = [rendezvous(name, [1, 2, 3]) for name in self.names]
        self.assertEqual(owners, [rendezvous(name, [3, 1, 2]) for name in self.names])
        for node_id in (1, 2, 3):
            self.assertGreater(owners.count(node_id), 150)

    def test_a_joining_node_takes_only_its_share(self):
        before = [rendezvous(name, [1, 2, 3]) for name in self.names]
        after = [rendezvous(name, [1, 2, 3, 4]) for name in self.names]
        moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
        self.assertTrue(all(new == 4 for _, new in moved))
        self.assertGreater(len(moved), 100)
        self.assertLess(len(moved), 200)

    def test_a_leaving_node_gives_up_only_its_share(self):
        before = [rendezvous(name, [1, 2, 3]) for name in self.names]
        after = [rendezvous(name, [1, 3]) for name in self.names]
        self.assertTrue(all(old == new for old, new in zip(before, after, strict=True) if old != 2))

    def test_nobody(self):
        self.assertIsNone(rendezvous(b"x", []))

    def test_slots(self):
        self.assertEqual(slot_of("readers"), slot_of("readers"))
        self.assertEqual(len({slot_of(f"group-{n}") for n in range(1000)}), SLOTS)


class ClusterTestsMixin(EtcdTestMixin):
    async def member(self, port, node_id=None, endpoint=None, on_slots=None, **options):
        """A started Cluster on a store of its own, as a broker has."""
        store = await self.make_store(endpoint, **options)
        cluster = Cluster(store, "127.0.0.1", port, node_id=node_id)
        if on_slots is not None:
            cluster.subscribe_slots(lambda slot, held: on_slots(cluster, slot, held))
        cluster.startService()
        self.addCleanup(lambda: cluster.stopService() if cluster.running else None)
        await cluster.join()
        return cluster

    async def test_node_ids_given_and_allocated(self):
        given = await self.member(9092, node_id=5)
        first = await self.member(9093)
        second = await self.member(9094)
        self.assertEqual((given.node_id, first.node_id, second.node_id),
                         (5, FIRST_ALLOCATED_NODE_ID, FIRST_ALLOCATED_NODE_ID + 1))
        for member in (given, first, second):
            verifyObject(IClusterView, member)
            await eventually(lambda member=member: [b.port for b in member.live_brokers()] == [9092, 9093, 9094],
                             timeout=VIEW_WITHIN)
            self.assertEqual(member.controller_id(), 5)

    async def test_a_given_node_id_in_use_is_refused(self):
        await self.member(9092, node_id=5)
        # A taker waits two of its lease TTLs for the id to come free.
        store = await self.make_store(lease_ttl=1)
        taker = Cluster(store, "127.0.0.1", 9093, node_id=5)
        with self.assertRaises(NodeIdInUse):
            await taker.join()

    async def test_members_agree_on_assignment(self):
        members = [await self.member(9092 + n) for n in range(3)]
        for member in members:
            await eventually(lambda member=member: len(member.live_node_ids()) == 3, timeout=VIEW_WITHIN)
        for partition in range(30):
            self.assertEqual(len({m.assignee("events", partition) for m in members}), 1)
        self.assertEqual({members[0].assignee("events", p) for p in range(30)},
                         {m.node_id for m in members})

    async def test_owner_keys(self):
        first = await self.member(9092)
        second = await self.member(9093)
        await first.store.create_topic("events", 1)
        state = await first.acquire("events", 0)
        self.assertEqual(state.leader_epoch, 1)
        await eventually(lambda: second.owner("events", 0) is not None, timeout=VIEW_WITHIN)
        owner = second.owner("events", 0)
        self.assertEqual((owner.node_id, owner.epoch), (first.node_id, 1))
        self.assertTrue(first.holds("events", 0))
        self.assertFalse(first.taken_by_another("events", 0))
        self.assertTrue(first.free("events", 0))
        self.assertTrue(second.taken_by_another("events", 0))
        self.assertFalse(second.free("events", 0))
        with self.assertRaises(OwnedElsewhere):
            await second.acquire("events", 0)
        await first.release("events", 0)
        self.assertFalse(first.holds("events", 0))
        await eventually(lambda: second.free("events", 0), timeout=VIEW_WITHIN)
        state = await second.acquire("events", 0)
        self.assertEqual((state.leader_epoch, state.epoch_history), (2, ((2, 0),)))
        await eventually(lambda: first.taken_by_another("events", 0), timeout=VIEW_WITHIN)
        self.assertTrue(second.holds("events", 0))

    async def test_a_lapsed_lease_frees_the_partitions(self):
        first = await self.member(9092)
        second = await self.member(9093)
        await first.store.create_topic("events", 1)
        await first.acquire("events", 0)
        await eventually(lambda: second.owner("events", 0) is not None, timeout=VIEW_WITHIN)
        # What etcd does when the owner stops renewing: the lease goes, and
        # every key on it.
        lost = first.store.current_session
        await self.raw_client().lease_revoke(lost.lease_id)
        await eventually(lambda: second.owner("events", 0) is None, timeout=VIEW_WITHIN)
        await eventually(lambda: first.node_id not in second.live_node_ids(), timeout=VIEW_WITHIN)
        self.assertEqual((await second.acquire("events", 0)).leader_epoch, 2)
        await eventually(lambda: first.taken_by_another("events", 0), timeout=VIEW_WITHIN)
        # The first learns at its next renewal; its store registers it again
        # under a new lease.
        await eventually(lambda: first.store.current_session not in (None, lost), timeout=3)
        self.assertTrue(lost.lost)
        await eventually(lambda: first.healthy(), timeout=VIEW_WITHIN)
        await eventually(lambda: first.node_id in second.live_node_ids(), timeout=VIEW_WITHIN)
        self.assertFalse(first.holds("events", 0))
        self.assertTrue(first.taken_by_another("events", 0))

    async def test_slots_are_shared_and_handed_over(self):
        events = []

        def record(member, slot, held):
            events.append((member.node_id, slot, held))

        first = await self.member(9092, on_slots=record)
        await eventually(lambda: all(first.slot_owner(slot) == first.node_id for slot in range(SLOTS)),
                         timeout=VIEW_WITHIN)
        second = await self.member(9093, on_slots=record)
        ours = {slot for slot in range(SLOTS) if second.slot_assignee(slot) == second.node_id}
        self.assertTrue(0 < len(ours) < SLOTS)

        def settled():
            return all(
                (second if slot in ours else first).holds_slot(slot)
                and member.slot_owner(slot) == (second.node_id if slot in ours else first.node_id)
                for member in (first, second) for slot in range(SLOTS))

        await eventually(settled, timeout=VIEW_WITHIN)
        self.assertEqual({slot for node, slot, held in events if node == first.node_id and not held}, ours)
        self.assertEqual({slot for node, slot, held in events if node == second.node_id and held}, ours)
        group = next(f"group-{n}" for n in range(100) if slot_of(f"group-{n}") in ours)
        self.assertTrue(second.holds_slot(second.slot_of(group)))
        self.assertFalse(first.holds_slot(first.slot_of(group)))
        self.assertEqual((second.coordinates(group), first.coordinates(group)), (True, False))
        self.assertEqual([m.coordinator_for(group).port for m in (first, second)], [9093, 9093])

        # A leaving member tells its subscribers, and waits for them, before
        # it lets go of each slot.
        handed = []

        async def flush_groups(slot, held):
            await deferLater(reactor, 0.05)
            key = await second.store.client.get(second.store.keys.coordinator(slot))
            handed.append((slot, held, key.lease))

        second.subscribe_slots(flush_groups)
        await second.leave()
        self.assertEqual({slot for slot, held, _ in handed}, ours)
        self.assertEqual({lease for _, _, lease in handed}, {second.store.current_session.lease_id})
        await eventually(lambda: all(first.slot_owner(slot) == first.node_id for slot in range(SLOTS)),
                         timeout=VIEW_WITHIN)

    async def test_a_broker_cut_off_from_etcd_stops_writes_before_its_lease_can_expire(self):
        server = self.private_server()
        member = await self.member(9092, endpoint=server.endpoint, timeout=0.5)
        await member.store.create_topic("events", 1)
        await member.acquire("events", 0)
        session = member.store.current_session
        self.assertTrue(member.healthy())
        self.assertTrue(member.holds("events", 0))
        server.stop()
        await eventually(lambda: not member.healthy(), timeout=3)
        self.assertLess(reactor.seconds(), session.deadline)
        with self.assertRaises(MetadataUnavailable):
            await member.acquire("events", 0)
        server.start()
        await eventually(lambda: member.healthy(), timeout=10)
        # Within the TTL its lease survived (etcd renews leases on restart);
        # otherwise it has a new lease and must acquire again.
        self.assertEqual(member.holds("events", 0), member.store.current_session is session)
    test_a_broker_cut_off_from_etcd_stops_writes_before_its_lease_can_expire.timeout = 30


class Etcd35ClusterTests(ClusterTestsMixin, TestCase):
    flavour = "3.5"


class Etcd34ClusterTests(ClusterTestsMixin, TestCase):
    flavour = "3.4"
