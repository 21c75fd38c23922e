"""The Grafana dashboard asks only for metrics a live broker exports."""

import json
import os
import re
import uuid

from twisted.trial import unittest

from kafscale.protocol.messages import ApiKey
from tests.support.brokers import SOURCE_ROOT, admin_url, in_thread, start_broker
from tests.support.clients import consume, produce
from tests.support.etcd_server import EtcdTestMixin
from tests.support.groups import FAST_REBALANCES, PollingConsumer, commit_offsets
from tests.support.metrics import scrape
from tests.support.records import simple_batch
from tests.support.topics import create_topic
from tests.support.waiting import eventually
from tests.support.wire import Connection

DASHBOARD = os.path.join(SOURCE_ROOT, "grafana", "kafscale.json")
_METRIC = re.compile(r"\b(?:kafscale|process)_[a-z0-9_]+\b")


def dashboard_metrics():
    """Every metric name the dashboard's queries name."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    expressions += [variable.get("query", "") for variable in dashboard["templating"]["list"]]
    return {name for expression in expressions for name in _METRIC.findall(expression)}


def refused_produce(bootstrap):
    connection = Connection(bootstrap)
    try:
        connection.request(ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": -1, "timeout_ms": 5000,
            "topic_data": [{"name": "shown", "partition_data": [{"index": 9, "records": simple_batch(1)}]}]})
    finally:
        connection.close()


class DashboardTests(EtcdTestMixin, unittest.TestCase):
    async def test_every_metric_it_names_is_exported(self):
        names = dashboard_metrics()
        self.assertGreater(len(names), 30)
        # No segment cache: reads GET from the object store.
        broker, bootstrap = await start_broker(self, "--etcd", self.endpoint, "--cluster-id",
                                               f"dashboard-{uuid.uuid4().hex[:8]}", "--group-lag-interval-ms", "50",
                                               "--cache-bytes", "0", *FAST_REBALANCES)
        url = admin_url(broker)
        await create_topic(bootstrap, "shown", 1)
        await in_thread(produce, bootstrap, "shown", [(None, b"x", None, 0)] * 10)
        await in_thread(consume, bootstrap, "shown", [0], 10)
        await in_thread(commit_offsets, bootstrap, "viewers", "shown", {0: 3})
        await in_thread(refused_produce, bootstrap)
        member = PollingConsumer(bootstrap, "members", "shown")
        self.addCleanup(in_thread, member.close)

        async def all_exported():
            exported = (await scrape(url)).names()
            all_exported.missing = sorted(names - exported)
            return not all_exported.missing

        try:
            await eventually(all_exported, what="every dashboard metric exported")
        except AssertionError:
            self.fail(f"not exported: {all_exported.missing}")
