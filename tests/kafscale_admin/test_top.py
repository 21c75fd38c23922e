"""``kafscale-admin top`` against a running broker's /metrics."""

import json

from click.testing import CliRunner
from twisted.trial import unittest

from kafscale_admin.cli import main
from kafscale_admin.top import quantile
from tests.support.brokers import admin_url, in_thread, start_broker
from tests.support.clients import NumberedProducer, produce
from tests.support.groups import commit_offsets
from tests.support.topics import create_topic
from tests.support.waiting import eventually


def run_top(*args):
    result = CliRunner().invoke(main, ["top", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


class QuantileTests(unittest.TestCase):
    def test_interpolates_within_the_bucket_as_prometheus_does(self):
        earlier = {0.1: 10, 0.2: 10, float("inf"): 10}
        later = {0.1: 10, 0.2: 110, float("inf"): 110}
        # 100 observations, all in (0.1, 0.2]: the 99th is 99% of the way up.
        self.assertAlmostEqual(quantile(0.99, earlier, later), 0.199)
        self.assertAlmostEqual(quantile(0.5, earlier, later), 0.15)
        self.assertIsNone(quantile(0.99, later, later))
        # Beyond the last finite bound: that bound.
        self.assertEqual(quantile(0.99, {}, {0.1: 1, float("inf"): 5}), 0.1)


class TopTests(unittest.TestCase):
    async def test_rates_latencies_and_lagging_groups(self):
        broker, bootstrap = await start_broker(self, "--group-lag-interval-ms", "50")
        url = admin_url(broker)
        await create_topic(bootstrap, "watched", 1)
        await in_thread(produce, bootstrap, "watched", [(None, b"x", None, 0)] * 8)
        await in_thread(commit_offsets, bootstrap, "behind", "watched", {0: 3})
        producer = NumberedProducer(bootstrap, "watched", 1).start()
        try:
            await eventually(lambda: len(producer.acked) > 0, what="a record acknowledged")
            snapshot = json.loads(await in_thread(run_top, "--metrics", url, "--once", "--interval", "1",
                                                  "--output", "json"))
        finally:
            await in_thread(producer.stop)
        [row] = snapshot["brokers"]
        self.assertEqual((row["url"], row["node_id"], row["ready"]), (url, 0, True))
        self.assertGreater(row["produce_records_per_s"], 0)
        self.assertGreater(row["produce_p99_s"], 0)
        self.assertEqual(row["partitions"], 1)
        [group] = snapshot["lagging_groups"]
        self.assertEqual((group["group"], group["worst"]), ("behind", "watched-0"))
        self.assertGreaterEqual(group["lag"], 8 - 3)

        table = await in_thread(run_top, "--metrics", url, "--metrics", "http://127.0.0.1:1", "--once",
                                "--interval", "0.2")
        self.assertIn("Kafscale brokers", table)
        self.assertIn("unreachable", table)
        self.assertIn("behind", table)
