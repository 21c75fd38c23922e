"""The admin API of a running broker: /metrics, /healthz, and /readyz
following the metadata store (a real etcd, stopped and started again)."""

import uuid

from twisted.trial import unittest

from tests.support.brokers import admin_url, in_thread, start_broker
from tests.support.etcd_server import EtcdTestMixin
from tests.support.metrics import probe, scrape
from tests.support.waiting import eventually


class AdminTests(unittest.TestCase):
    async def test_probes_and_metrics(self):
        broker, _ = await start_broker(self)
        url = admin_url(broker)
        self.assertEqual(await probe(url, "/healthz"), (200, "ok\n"))
        self.assertEqual(await probe(url, "/readyz"), (200, "ready\n"))
        self.assertEqual((await probe(url, "/nothing"))[0], 404)
        samples = await scrape(url)
        self.assertEqual(samples.total("kafscale_broker_ready"), 1)
        self.assertEqual(samples.total("kafscale_broker_info", node_id="0"), 1)
        # The embedded store's calls are counted too.
        self.assertGreater(samples.total("kafscale_metadata_requests_total", outcome="ok"), 0)

    async def test_not_ready_once_not_accepting_clients(self):
        broker, _ = await start_broker(self)
        url = admin_url(broker)
        # Stopping, the broker stops listening first.
        await broker.parent.getServiceNamed("listener").stopService()
        status, text = await probe(url, "/readyz")
        self.assertEqual(status, 503)
        self.assertIn("not accepting clients", text)
        self.assertEqual((await probe(url, "/healthz"))[0], 200)


class ReadinessWithEtcdTests(EtcdTestMixin, unittest.TestCase):
    async def test_not_ready_while_etcd_is_down(self):
        etcd = self.private_server()
        broker, _ = await start_broker(self, "--etcd", etcd.endpoint, "--cluster-id", f"ready-{uuid.uuid4().hex[:8]}",
                                       "--lease-ttl", "3")
        url = admin_url(broker)
        self.assertEqual(await probe(url, "/readyz"), (200, "ready\n"))
        samples = await scrape(url)
        self.assertEqual(samples.total("kafscale_etcd_lease_alive"), 1)

        await in_thread(etcd.stop)

        async def not_ready():
            status, text = await probe(url, "/readyz")
            return status == 503 and "not ready" in text

        await eventually(not_ready, timeout=15, what="/readyz 503 with etcd stopped")
        self.assertEqual((await probe(url, "/healthz"))[0], 200)
        self.assertGreater((await scrape(url)).total("kafscale_metadata_requests_total", outcome="unavailable"), 0)

        await in_thread(etcd.start)

        async def ready():
            return (await probe(url, "/readyz"))[0] == 200

        await eventually(ready, timeout=30, what="/readyz 200 once etcd is back")
