"""The Broker service: its lifetime around the stores it waits for."""

import tempfile

from twisted.trial import unittest

from kafscale.tap import Options, makeService
from tests.support.brokers import free_port
from tests.support.waiting import sleep


class StopWhileStartingTests(unittest.TestCase):
    async def test_a_broker_waiting_for_etcd_stops_cleanly(self):
        """Stopped while it waits for an unreachable etcd, a broker neither
        hangs nor goes on to join later (trial fails on leftover timers)."""
        options = Options()
        options.parseOptions(["--listen", f"tcp:{free_port()}:interface=127.0.0.1",
                              "--data-dir", tempfile.mkdtemp(prefix="kafscale-test-"),
                              "--etcd", f"http://127.0.0.1:{free_port()}"])
        service = makeService(options)
        service.startService()
        await sleep(0.5)
        await service.stopService()
        broker = service.getServiceNamed("broker")
        self.assertFalse(broker.running)
        self.assertEqual(broker.logs, {})
