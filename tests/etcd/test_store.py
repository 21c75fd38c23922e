"""EtcdMetadataStore: the metadata store contract, and what etcd adds
(session leases, owner keys, ambiguous retries, outages), against real etcd
3.5 and 3.4 servers."""

from dataclasses import replace

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

import kafscale.etcd.store
from kafscale.etcd import layout
from kafscale.etcd.interfaces import IOwnershipStore
from kafscale.metadata.interfaces import (
    BrokerInfo,
    CommittedOffset,
    Fenced,
    MetadataUnavailable,
    NodeIdInUse,
    OwnedElsewhere,
    SegmentRef,
    UnknownTopic,
)
from tests.support.etcd_server import EtcdTestMixin
from tests.support.faults import TcpProxy
from tests.support.metadata_contract import MetadataStoreContract, segment
from tests.support.waiting import eventually


class EtcdStoreTests(EtcdTestMixin):
    async def test_provides_the_ownership_extension(self):
        self.assertTrue(verifyObject(IOwnershipStore, await self.make_store()))

    async def test_keys_live_under_the_cluster_prefix(self):
        store = await self.make_store()
        await store.create_topic("events", 2)
        await store.claim_partition("events", 1, 0)
        await store.commit_segment("events", 1, 1, 0, segment(0, 9, partition=1))
        await store.save_group("a/b", {"generation": 1})
        keys = [kv.key for kv in (await self.raw_client().range(self.prefix, prefix=True)).kvs]
        self.assertEqual(sorted(key[len(self.prefix):] for key in keys), [
            b"groups/a%2Fb",
            b"partitions/events/1",
            b"segments/events/1/00000000000000000000",
            b"topics/events",
        ])

    async def test_manifest_entries_of_before_shared_objects_read_as_format_1(self):
        store = await self.make_store()
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        written = b'{"base":0,"last":9,"max_timestamp":5,"size":100,"count":10,"key":"events/0/s.kfs"}'
        await self.raw_client().put(self.prefix + b"segments/events/0/00000000000000000000", written)
        state = await self.raw_client().get(self.prefix + b"partitions/events/0")
        await self.raw_client().put(self.prefix + b"partitions/events/0", state.value.replace(b'"next":0', b'"next":10'))
        fresh = await self.make_store()
        self.assertEqual((await fresh.partition_state("events", 0)).segments,
                         (SegmentRef(0, 9, 5, 100, 10, "events/0/s.kfs", 0, 1),))
        self.assertEqual(layout.encode_segment(SegmentRef(0, 9, 5, 100, 10, "events/0/s.kfs")), written)

    async def test_a_topic_of_many_partitions_is_one_small_transaction(self):
        # etcd refuses transactions of more than 128 operations.
        store = await self.make_store()
        await store.create_topic("wide", 1000)
        await store.add_partitions("wide", 2000)
        self.assertEqual((await store.partition_state("wide", 1999)).leader_epoch, 0)
        await store.claim_partition("wide", 1500, 0)
        await store.delete_topic("wide")
        self.assertEqual((await self.raw_client().range(self.prefix, prefix=True)).count, 0)

    async def test_many_offsets_in_one_commit(self):
        store = await self.make_store()
        offsets = {("events", p): CommittedOffset(p, -1, None, 0) for p in range(300)}
        await store.commit_offsets("readers", offsets)
        self.assertEqual(await store.fetch_offsets("readers"), offsets)

    async def test_manifest_of_many_segments_is_read_in_pages(self):
        self.patch(kafscale.etcd.store, "PAGE", 7)
        store = await self.make_store()
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        for base in range(30):
            await store.commit_segment("events", 0, 1, base, segment(base, base))
        other = await self.make_store()
        state = await other.partition_state("events", 0)
        self.assertEqual([s.base_offset for s in state.segments], list(range(30)))
        self.assertEqual(state, await store.partition_state("events", 0))

    async def test_a_commit_applied_twice_is_recognised(self):
        # A dropped connection makes the client send a transaction again;
        # etcd may have applied the first one. Simulate: the same commit,
        # once more, after it landed.
        store = await self.make_store()
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        ours = segment(0, 9)
        first = await store.commit_segment("events", 0, 1, 0, ours)
        store._partitions.clear()
        await store.partition_state("events", 0)
        store._partitions["events", 0] = _stale(store._partitions["events", 0])
        self.assertEqual(await store.commit_segment("events", 0, 1, 0, ours), first)
        theirs = SegmentRef(0, 9, 0, 1000, 10, "events/0/segment-00000000000000000000-other.kfs")
        store._partitions["events", 0] = _stale(store._partitions["events", 0])
        with self.assertRaises(Fenced):
            await store.commit_segment("events", 0, 1, 0, theirs)

    async def test_late_commit_after_the_topic_was_recreated_is_fenced(self):
        deposed = await self.make_store()
        other = await self.make_store()
        await deposed.create_topic("events", 1)
        await deposed.claim_partition("events", 0, 0)
        await other.delete_topic("events")
        await other.create_topic("events", 1)
        await other.claim_partition("events", 0, 0)
        with self.assertRaises(Fenced):
            await deposed.commit_segment("events", 0, 1, 0, segment(0, 9))
        self.assertEqual((await other.partition_state("events", 0)).segments, ())

    async def test_acquire_writes_an_owner_key_under_the_session_lease(self):
        store = await self.make_store()
        other = await self.make_store()
        await store.create_topic("events", 1)
        acquired = await store.acquire_partition("events", 0, 7)
        self.assertEqual((acquired.state.leader_epoch, acquired.state.epoch_history), (1, ((1, 0),)))
        session = await store.session()
        owner = await self.raw_client().get(store.keys.owner("events", 0))
        self.assertEqual((owner.lease, owner.mod_revision), (session.lease_id, acquired.revision))
        self.assertEqual(acquired.lease, session.lease_id)
        with self.assertRaises(OwnedElsewhere) as raised:
            await other.acquire_partition("events", 0, 8)
        self.assertEqual(raised.exception.node_id, 7)
        # The holder may claim again (a new epoch) under the same lease.
        self.assertEqual((await store.acquire_partition("events", 0, 7)).state.leader_epoch, 2)
        # Only the holder's release deletes the key.
        await other.release_partition("events", 0)
        self.assertIsNotNone(await self.raw_client().get(store.keys.owner("events", 0)))
        await store.release_partition("events", 0)
        self.assertEqual((await other.acquire_partition("events", 0, 8)).state.leader_epoch, 3)
        # A stopped store's lease is revoked: its owner keys go at once.
        await other.stopService()
        self.assertEqual((await store.acquire_partition("events", 0, 7)).state.leader_epoch, 4)

    async def test_take_slot_writes_an_owner_key_under_the_session_lease(self):
        store = await self.make_store()
        other = await self.make_store()
        self.assertIsNone(await store.take_slot(3, 7, 0))  # no session yet
        session = await store.session()
        await other.session()
        taken = await store.take_slot(3, 7, 0)
        self.assertEqual(taken.lease, session.lease_id)
        owner = await self.raw_client().get(store.keys.coordinator(3))
        self.assertEqual((owner.lease, owner.mod_revision, owner.value), (session.lease_id, taken.revision,
                                                                          b'{"node_id":7}'))
        # The key is there now: a take expecting it absent changes nothing.
        self.assertIsNone(await other.take_slot(3, 8, 0))
        await other.release_slot(3)
        self.assertEqual((await self.raw_client().get(store.keys.coordinator(3))).mod_revision, taken.revision)
        await store.release_slot(3)
        self.assertIsNone(await self.raw_client().get(store.keys.coordinator(3)))

    async def test_exclusive_registration(self):
        store = await self.make_store()
        other = await self.make_store()
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9092, None, 0), exclusive=True)
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9093, None, 0), exclusive=True)
        with self.assertRaises(NodeIdInUse):
            await other.register_broker(BrokerInfo(1, "127.0.0.1", 9094, None, 0), exclusive=True)
        self.assertEqual([b.port for b in await other.brokers()], [9093])
        await store.deregister_broker(1)
        await other.register_broker(BrokerInfo(1, "127.0.0.1", 9094, None, 0), exclusive=True)
        self.assertEqual([b.port for b in await store.brokers()], [9094])

    async def proxied_store(self):
        host, port = self.endpoint.removeprefix("http://").rsplit(":", 1)
        proxy = TcpProxy(host, int(port))
        await proxy.start()
        self.addCleanup(proxy.close)
        return proxy, await self.make_store(proxy.endpoint)

    async def test_a_create_whose_answer_was_lost_is_ours(self):
        proxy, store = await self.proxied_store()
        proxy.lose_next_answer("/v3/kv/txn")
        info = await store.create_topic("events", 2)
        self.assertEqual((await store.topics())["events"], info)

    async def test_a_delete_whose_answer_was_lost_is_ours(self):
        proxy, store = await self.proxied_store()
        info = await store.create_topic("events", 2)
        proxy.lose_next_answer("/v3/kv/txn")
        self.assertEqual(await store.delete_topic("events"), info)
        self.assertEqual(await store.topics(), {})

    async def test_a_registration_whose_answer_was_lost_is_ours(self):
        proxy, store = await self.proxied_store()
        await store.session()
        proxy.lose_next_answer("/v3/kv/txn")
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9092, None, 0), exclusive=True)
        self.assertEqual([b.port for b in await store.brokers()], [9092])

    async def test_unknown_topic_on_acquire(self):
        store = await self.make_store()
        with self.assertRaises(UnknownTopic):
            await store.acquire_partition("missing", 0, 1)

    async def test_outage_and_recovery(self):
        server = self.private_server()
        store = await self.make_store(server.endpoint, timeout=1.0)
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9092, None, 0))
        lost = await store.session()
        changes = []
        store.subscribe(changes.append)
        server.stop()
        with self.assertRaises(MetadataUnavailable):
            await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        # The lease lapses while etcd is away: subscribers hear of it.
        await eventually(lambda: lost.lost, timeout=5)
        self.assertIn(frozenset({"brokers"}), changes)
        server.start()
        state = await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        self.assertEqual(state.next_offset, 10)
        # The registration comes back by itself, under a new lease.
        await eventually(lambda: store._session is not None and not store._session.lost, timeout=10)
        self.assertEqual([b.node_id for b in await store.brokers()], [1])
        self.assertNotEqual((await store.session()).lease_id, lost.lease_id)
    test_outage_and_recovery.timeout = 40


def _stale(known):
    """``known`` as if an older write were the last this store saw."""
    previous = known.state.segments[:-1]
    state = replace(known.state, segments=previous,
                    next_offset=previous[-1].last_offset + 1 if previous else known.state.log_start_offset)
    return replace(known, mod_revision=known.mod_revision - 1, state=state)


class Etcd35ContractTests(MetadataStoreContract, EtcdTestMixin, TestCase):
    flavour = "3.5"


class Etcd34ContractTests(MetadataStoreContract, EtcdTestMixin, TestCase):
    flavour = "3.4"


class Etcd35StoreTests(EtcdStoreTests, TestCase):
    flavour = "3.5"


class Etcd34StoreTests(EtcdStoreTests, TestCase):
    flavour = "3.4"
