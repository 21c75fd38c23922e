"""SoleOwner: the ownership of a broker alone on its metadata store."""

import os
import tempfile

from twisted.trial.unittest import TestCase

from kafscale.metadata.cluster import SoleOwner
from kafscale.metadata.embedded import EmbeddedMetadataStore


class SoleOwnerTests(TestCase):
    """A broker alone on the embedded store owns every partition; taking one
    is a claim at the next leader epoch."""

    async def test_takes_everything_with_a_new_epoch_each_time(self):
        store = EmbeddedMetadataStore(os.path.join(tempfile.mkdtemp(prefix="kafscale-sole-"), "metadata.sqlite"))
        store.startService()
        self.addCleanup(store.stopService)
        await store.create_topic("t", 2)
        owner = SoleOwner(store, node_id=4)
        self.assertTrue(owner.healthy() and owner.free("t", 1) and owner.holds("t", 1))
        self.assertEqual((owner.assignee("t", 1), owner.taken_by_another("t", 1)), (4, False))
        first = await owner.acquire("t", 1)
        second = await owner.acquire("t", 1)
        self.assertEqual((first.leader_epoch, second.leader_epoch), (1, 2))
        await owner.release("t", 1)
        self.assertEqual((await store.partition_state("t", 1)).leader_epoch, 2)
