"""The view of a broker alone on its metadata store (the embedded one):
it is the cluster, owns every partition and coordinates every group."""

import os
import tempfile

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import BrokerInfo, UnknownTopic
from kafscale.metadata.view import SLOTS, IClusterView, SoleBroker, slot_of


class SoleBrokerTests(TestCase):
    async def setUp(self):
        self.store = EmbeddedMetadataStore(
            os.path.join(tempfile.mkdtemp(prefix="kafscale-sole-"), "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        await self.store.create_topic("t", 2)
        clock = Clock()
        clock.advance(12.5)
        self.view = SoleBroker(self.store, 4, "broker.example", 9092, "rack-a", clock=clock)

    def test_provides_the_cluster_view(self):
        verifyObject(IClusterView, self.view)

    async def test_joining_registers_the_broker(self):
        self.assertEqual(await self.view.join(), 4)
        here = BrokerInfo(4, "broker.example", 9092, "rack-a", 12500)
        self.assertEqual(await self.store.brokers(), [here])
        self.assertEqual((self.view.live_brokers(), self.view.broker(4), self.view.broker(5)), ([here], here, None))
        self.assertEqual(self.view.controller_id(), 4)

    async def test_takes_everything_with_a_new_epoch_each_time(self):
        view = self.view
        self.assertTrue(view.healthy() and view.free("t", 1) and view.holds("t", 1))
        self.assertEqual((view.assignee("t", 1), view.taken_by_another("t", 1), view.owner("t", 1)), (4, False, None))
        first = await view.acquire("t", 1)
        second = await view.acquire("t", 1)
        self.assertEqual((first.leader_epoch, second.leader_epoch), (1, 2))
        await view.release("t", 1)
        self.assertEqual((await self.store.partition_state("t", 1)).leader_epoch, 2)
        with self.assertRaises(UnknownTopic):
            await view.acquire("t", 2)

    async def test_coordinates_every_group(self):
        await self.view.join()
        calls = []
        self.view.subscribe_slots(lambda slot, held: calls.append((slot, held)))
        for group_id in ("readers", "", "a/b"):
            self.assertTrue(self.view.coordinates(group_id))
            self.assertEqual(self.view.coordinator_for(group_id).node_id, 4)
            self.assertEqual(self.view.slot_of(group_id), slot_of(group_id))
            self.assertTrue(0 <= self.view.slot_of(group_id) < SLOTS)
        await self.view.leave()
        self.assertEqual(calls, [])
