"""``twistd kafscale``: options, environment fallbacks, and the plugin."""

import os
import subprocess
import sys

from twisted.python import usage
from twisted.trial import unittest

from kafscale.tap import Options
from tests.brokers import SOURCE_ROOT, BrokerProcess, in_thread
from tests.wire import Connection
from kafscale.protocol.messages import ApiKey


class OptionsTests(unittest.TestCase):
    def parse(self, *args, **env):
        self.patch(os, "environ", dict(os.environ, **env))
        options = Options()
        options.parseOptions(list(args))
        return options.config()

    def test_defaults(self):
        config = self.parse()
        self.assertEqual(config.listen, "tcp:9092:interface=127.0.0.1")
        self.assertEqual((config.advertised_host, config.advertised_port), ("127.0.0.1", 9092))
        self.assertEqual(config.data_dir, "kafscale-data")
        self.assertEqual(config.max_request_size, 104857600)

    def test_environment_fills_what_the_command_line_left(self):
        config = self.parse("--node-id", "3", KAFSCALE_NODE_ID="7", KAFSCALE_DATA_DIR="/srv/k",
                            KAFSCALE_MAX_REQUEST_SIZE="2048")
        self.assertEqual(config.node_id, 3)
        self.assertEqual(config.data_dir, "/srv/k")
        self.assertEqual(config.max_request_size, 2048)

    def test_advertised_address(self):
        config = self.parse("--listen", "tcp:19092:interface=0.0.0.0")
        self.assertEqual((config.advertised_host, config.advertised_port), ("127.0.0.1", 19092))
        config = self.parse("--listen", "unix:/tmp/k.sock", "--advertise", "kafka.example:9093")
        self.assertEqual((config.advertised_host, config.advertised_port), ("kafka.example", 9093))

    def test_every_option_reaches_the_config(self):
        config = self.parse("--group-initial-rebalance-delay-ms", "0", "--auto-create-topics", "no",
                            "--flush-linger-ms", "5", KAFSCALE_GROUP_MAX_SESSION_TIMEOUT_MS="60000")
        self.assertEqual(config.group_initial_rebalance_delay_ms, 0)
        self.assertIs(config.auto_create_topics, False)
        self.assertEqual(config.flush_linger_ms, 5)
        self.assertEqual(config.group_max_session_timeout_ms, 60000)
        self.assertIs(self.parse().auto_create_topics, True)

    def test_bad_values_are_usage_errors(self):
        self.assertRaises(usage.UsageError, self.parse, "--node-id", "x")
        self.assertRaises(usage.UsageError, self.parse, "--log-level", "loud")
        self.assertRaises(usage.UsageError, self.parse, "--listen", "unix:/tmp/k.sock")
        self.assertRaises(usage.UsageError, self.parse, KAFSCALE_MAX_REQUEST_SIZE="12")
        self.assertRaises(usage.UsageError, self.parse, "--group-min-session-timeout-ms", "90000",
                          "--group-max-session-timeout-ms", "60000")


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
