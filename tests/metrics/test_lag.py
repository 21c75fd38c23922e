"""Consumer group lag, members and rebalances against a running broker and
real clients: lag is the high watermark less the committed offset."""

from twisted.trial import unittest

from tests.support.brokers import admin_url, in_thread, start_broker
from tests.support.clients import produce
from tests.support.groups import FAST_REBALANCES, PollingConsumer, commit_offsets, consume_in_group
from tests.support.metrics import scrape
from tests.support.topics import create_topic
from tests.support.waiting import eventually


async def lags(url, group, topic):
    """{partition: lag} of ``group`` in ``topic``, as exported."""
    samples = await scrape(url)
    return samples.by("kafscale_group_lag", "partition", group=group, topic=topic)


class GroupLagTests(unittest.TestCase):
    async def test_lag_is_the_high_watermark_less_the_committed_offset(self):
        broker, bootstrap = await start_broker(self, "--group-lag-interval-ms", "50")
        url = admin_url(broker)
        await create_topic(bootstrap, "lagging", 2)
        await in_thread(produce, bootstrap, "lagging", [(None, b"%d" % i, None, i % 2) for i in range(20)])
        await in_thread(commit_offsets, bootstrap, "watchers", "lagging", {0: 4, 1: 10})

        async def lag_is(expected):
            return await lags(url, "watchers", "lagging") == expected

        await eventually(lambda: lag_is({"0": 6, "1": 0}), what="lag 6 and 0")
        await in_thread(produce, bootstrap, "lagging", [(None, b"more", None, 1)] * 3)
        await eventually(lambda: lag_is({"0": 6, "1": 3}), what="lag 6 and 3 after 3 more records")
        state = await broker.metadata.partition_state("lagging", 1)
        self.assertEqual(state.next_offset, 13)

    async def test_lag_of_a_consuming_group_members_and_rebalances(self):
        broker, bootstrap = await start_broker(self, *FAST_REBALANCES, "--group-lag-interval-ms", "50")
        url = admin_url(broker)
        await create_topic(bootstrap, "joined", 1)
        await in_thread(produce, bootstrap, "joined", [(None, b"x", None, 0)] * 5)
        await in_thread(consume_in_group, bootstrap, "readers", "joined", 3)
        await eventually(lambda: _equal(lags(url, "readers", "joined"), {"0": 2}), what="lag 2 after reading 3")

        before = await scrape(url)
        consumer = PollingConsumer(bootstrap, "members", "joined")
        try:
            await eventually(lambda: consumer.assigned == {0}, timeout=20, what="partition 0 assigned")
            samples = await scrape(url)
            self.assertEqual(samples.total("kafscale_group_members", group="members"), 1)
            self.assertEqual(samples.total("kafscale_group_rebalances_total")
                             - before.total("kafscale_group_rebalances_total"), 1)
        finally:
            await in_thread(consumer.close)


async def _equal(awaitable, expected):
    return await awaitable == expected
