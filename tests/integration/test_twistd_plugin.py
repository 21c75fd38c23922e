"""The ``twistd kafscale`` plugin: shipped by a plain install, and running a
real broker process."""

import json
import os
import subprocess
import sys

from twisted.trial import unittest

from kafscale.protocol.messages import ApiKey
from tests.support.brokers import SOURCE_ROOT, BrokerProcess, in_thread
from tests.support.metrics import probe
from tests.support.waiting import eventually
from tests.support.wire import Connection


class PluginTests(unittest.TestCase):
    def test_plain_install_ships_the_plugin(self):
        """``pip install .`` (not only a checkout) makes ``twistd`` list it."""
        target = self.mktemp()
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", target, SOURCE_ROOT],
            check=True, capture_output=True,
        )
        self.assertTrue(os.path.exists(os.path.join(target, "twisted", "plugins", "kafscale_plugin.py")))
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        out = subprocess.run(
            [twistd, "--help"], capture_output=True, text=True, check=True, cwd=target,
            env=dict(os.environ, PYTHONPATH=os.path.abspath(target)),
        ).stdout
        self.assertRegex(out, r"\n +kafscale +A Kafka-compatible broker")

    async def test_twistd_runs_a_broker(self):
        broker = BrokerProcess()
        await in_thread(broker.start)
        self.addCleanup(broker.stop)

        def metadata():
            conn = Connection(broker.bootstrap)
            try:
                return conn.request(ApiKey.METADATA, 1, {"topics": None})
            finally:
                conn.close()

        body = await in_thread(metadata)
        self.assertEqual(body["brokers"], [{"node_id": 0, "host": "127.0.0.1", "port": broker.port, "rack": None}])
        await in_thread(broker.stop)
        # twistd re-raises the SIGTERM after a clean shutdown to report it
        self.assertIn(broker.process.returncode, (0, -15))
        self.assertIn("Server Shut Down.", broker.output())

    async def test_json_logs_and_the_admin_api(self):
        """``--log-format json``: every line twistd writes is one JSON
        object; the admin API answers on ``--admin-listen``."""
        broker = BrokerProcess("--log-format", "json")
        await in_thread(broker.start)
        self.addCleanup(broker.stop)
        status, _ = await probe(broker.admin_url, "/healthz")
        self.assertEqual(status, 200)
        await eventually(lambda: _ready(broker.admin_url), what="/readyz 200")
        await in_thread(broker.stop)
        lines = [line for line in broker.output().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
        self.assertTrue(any(r["namespace"] == "kafscale.broker" and r["level"] == "info"
                            and r["message"].startswith("broker 0 ready") for r in records), lines)
        ready = next(r for r in records if r["message"].startswith("broker 0 ready"))
        self.assertEqual(ready["node"], 0)


async def _ready(url):
    return (await probe(url, "/readyz"))[0] == 200
