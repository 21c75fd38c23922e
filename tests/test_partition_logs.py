"""The partition logs a broker serves: which one serves a request, who
leads the partitions it does not serve, and a log's questions to its
holder."""

import os
import tempfile
import uuid
from types import SimpleNamespace

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from kafscale.config import BrokerConfig
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import BrokerInfo, UnknownTopic
from kafscale.metadata.view import SoleBroker
from kafscale.partition_logs import NotLeader, PartitionLogs
from kafscale.storage.cache import SegmentCache
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.interfaces import IPartitionHolder
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.partition_log import BufferBudget


class SharedView(SoleBroker):
    """A view in which broker 7 is live too and owns what ``owners`` says."""

    owners = {}
    healthy_now = True

    def owner(self, topic, partition):
        return self.owners.get((topic, partition))

    def broker(self, node_id):
        return BrokerInfo(7, "127.0.0.1", 9093, None, 0) if node_id == 7 else super().broker(node_id)

    def healthy(self):
        return self.healthy_now


class PartitionLogsTests(TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-logs-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        objects = LocalObjectStore(os.path.join(directory, "objects"))
        self.addCleanup(objects.close)
        self.info = await self.store.create_topic("t", 3)
        self.view = SharedView(self.store, 0, "127.0.0.1", 9092)
        self.logs = PartitionLogs({"t": self.info}, self.view, metadata=self.store, objects=objects,
                                  cache=SegmentCache(1 << 20), budget=BufferBudget(1 << 20),
                                  flusher=Flusher(node_id=0, objects=objects, metadata=self.store,
                                                  settings=FlushSettings(), reactor=reactor),
                                  config=BrokerConfig(), reactor=reactor)
        self.served = self.logs.open(self.info, await self.view.acquire("t", 0))
        self.addCleanup(self.served.close)

    def test_is_the_logs_holder(self):
        verifyObject(IPartitionHolder, self.logs)
        self.assertTrue(self.logs.may_append("t", 0))
        self.view.healthy_now = False
        self.assertFalse(self.logs.may_append("t", 0))

    def test_log_for(self):
        self.assertIs(self.logs.log_for("t", 0), self.served)
        self.assertRaises(NotLeader, self.logs.log_for, "t", 1)
        for topic, partition in (("t", 3), ("t", -1), ("other", 0)):
            self.assertRaises(UnknownTopic, self.logs.log_for, topic, partition)

    def test_leader_of(self):
        owner = SimpleNamespace(node_id=7, epoch=4, topic_id=self.info.topic_id)
        self.view.owners = {
            ("t", 1): owner,
            ("t", 2): SimpleNamespace(node_id=7, epoch=2, topic_id=uuid.uuid4()),  # of a deleted namesake
        }
        self.assertEqual([self.logs.leader_of("t", p) for p in range(3)], [(0, 1), (7, 4), (-1, -1)])
        self.view.owners = {("t", 1): SimpleNamespace(node_id=8, epoch=4, topic_id=self.info.topic_id)}
        self.assertEqual(self.logs.leader_of("t", 1), (-1, -1))  # owned by a broker no longer live

    def test_a_deposed_log_leaves_and_is_told(self):
        told = []
        self.logs.subscribe_deposed(told.append)
        self.logs.deposed(self.served)
        self.assertEqual((dict(self.logs), told), ({}, [self.served]))
