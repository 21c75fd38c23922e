"""``kafscale-admin groups`` beside a running broker: groups made by a real
consumer, offsets reset by the CLI and then used by a consumer."""

import threading

from confluent_kafka import Consumer

from tests.support.admin import AdminCase, EtcdStores, S3Stores
from tests.support.brokers import in_thread
from tests.support.groups import FAST_CONSUMER, FAST_REBALANCES, consume_in_group
from tests.support.topics import create_topic, produce_segments
from tests.support.waiting import eventually

BASE_TIME = 1_700_000_000_000


class Member(threading.Thread):
    """A consumer that stays in its group until stopped."""

    def __init__(self, bootstrap, group, topic):
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **FAST_CONSUMER})
        self.topic = topic
        self.stopping = threading.Event()

    def run(self):
        self.consumer.subscribe([self.topic])
        while not self.stopping.is_set():
            self.consumer.poll(0.1)
        self.consumer.close()

    def stop(self):
        self.stopping.set()
        self.join(20)


class GroupsContract:
    broker_args = FAST_REBALANCES

    async def setUp(self):
        await super().setUp()
        await create_topic(self.bootstrap, "events", 2)
        # Partition 0: offsets 0-2 at BASE_TIME + 0, 1, 2 s; partition 1: offset 0.
        await in_thread(produce_segments, self.bootstrap, "events",
                        [[(b"a", BASE_TIME)], [(b"b", BASE_TIME + 1000), (b"c", BASE_TIME + 2000)]])
        await in_thread(produce_segments, self.bootstrap, "events", [[(b"z", BASE_TIME)]], partition=1)
        consumed = await in_thread(consume_in_group, self.bootstrap, "billing", "events", 4)
        self.assertEqual(consumed, [(0, 0), (0, 1), (0, 2), (1, 0)])

    async def committed(self, group="billing"):
        offsets = await self.broker.metadata.fetch_offsets(group)
        return {key: offset.offset for key, offset in offsets.items()}

    async def test_list(self):
        listed = await self.admin_json("groups", "list")
        billing = next(g for g in listed if g["group"] == "billing")
        self.assertEqual((billing["state"], billing["members"], billing["protocol_type"], billing["partitions"]),
                         ("Empty", 0, "consumer", 2))
        table = (await self.admin("groups", "list")).stdout
        self.assertRegex(table, r"│ billing +│ Empty +│ +0 │ consumer +│")

    async def test_describe(self):
        await in_thread(produce_segments, self.bootstrap, "events", [[(b"d", BASE_TIME + 3000)]])
        document = await self.admin_json("groups", "describe", "billing")
        self.assertEqual(document["members"], [])
        self.assertEqual([(o["topic"], o["partition"], o["committed_offset"], o["high_watermark"], o["lag"])
                          for o in document["offsets"]],
                         [("events", 0, 3, 4, 1), ("events", 1, 1, 1, 0)])
        table = (await self.admin("groups", "describe", "billing")).stdout
        self.assertIn("group billing: Empty, 0 members", table)
        self.assertRegex(table, r"│ events │ +0 │ +3 │ +4 │ +1 │")
        await self.refused("groups", "describe", "nobody", says="no group 'nobody'")

    async def test_reset_is_a_dry_run_until_executed(self):
        plan = await self.admin_json("groups", "reset-offsets", "billing", "--topic", "events", "--to-earliest")
        self.assertEqual(plan["executed"], False)
        self.assertEqual([(o["partition"], o["current_offset"], o["new_offset"]) for o in plan["offsets"]],
                         [(0, 3, 0), (1, 1, 0)])
        self.assertEqual(await self.committed(), {("events", 0): 3, ("events", 1): 1})
        table = (await self.admin("groups", "reset-offsets", "billing", "--topic", "events:0", "--to-offset", "1",
                                  "--execute")).stdout
        self.assertIn("group billing: new offsets committed", table)
        self.assertRegex(table, r"│ events │ +0 │ +3 │ +1 │")
        self.assertEqual(await self.committed(), {("events", 0): 1, ("events", 1): 1})
        # A consumer of the group starts where the reset put it.
        consumed = await in_thread(consume_in_group, self.bootstrap, "billing", "events", 2)
        self.assertEqual(consumed, [(0, 1), (0, 2)])

    async def test_every_target(self):
        async def reset(*target, partition="0"):
            plan = await self.admin_json("groups", "reset-offsets", "billing", "--topic", f"events:{partition}",
                                         *target, "--execute")
            return plan["offsets"][0]["new_offset"]

        self.assertEqual(await reset("--to-earliest"), 0)
        self.assertEqual(await reset("--to-latest"), 3)
        self.assertEqual(await reset("--shift-by", "-2"), 1)
        self.assertEqual(await reset("--shift-by", "-5"), 0)
        self.assertEqual(await reset("--to-offset", "99"), 3)
        # BASE_TIME is 2023-11-14T22:13:20Z; naive times are UTC.
        self.assertEqual(await reset("--to-datetime", "2023-11-14T22:13:21"), 1)
        self.assertEqual(await reset("--to-datetime", "2023-11-14T23:13:21.5+01:00"), 2)
        self.assertEqual(await reset("--to-datetime", "2030-01-01T00:00:00"), 3)
        self.assertEqual(await reset("--to-datetime", "2000-01-01"), 0)
        self.assertEqual(await self.committed(), {("events", 0): 0, ("events", 1): 1})
        usage = await self.admin("groups", "reset-offsets", "billing", "--topic", "events", exit_code=2)
        self.assertIn("give exactly one of --to-earliest", usage.stderr)
        usage = await self.admin("groups", "reset-offsets", "billing", "--topic", "events", "--to-datetime",
                                 "soon", exit_code=2)
        self.assertIn("'soon' is not an ISO 8601 date and time", usage.stderr)
        await self.refused("groups", "reset-offsets", "billing", "--topic", "events:7", "--to-earliest",
                           says="topic events has no partition 7")
        await self.refused("groups", "reset-offsets", "billing", "--topic", "nothing", "--to-earliest",
                           says="no topic 'nothing'")
        await self.refused("groups", "reset-offsets", "fresh", "--topic", "events", "--shift-by", "1",
                           says="group fresh has no committed offset for events-0 to shift from")

    async def test_refused_while_the_group_has_members(self):
        member = Member(self.bootstrap, "billing", "events")
        member.start()
        self.addCleanup(in_thread, member.stop)

        async def joined():
            state = await self.broker.metadata.load_group("billing")
            return bool(state and state["members"])

        await eventually(joined, timeout=20, what="the member joins")
        await self.refused("groups", "reset-offsets", "billing", "--topic", "events", "--to-earliest", "--execute",
                           says="group billing has 1 members: stop its consumers first")
        await self.refused("groups", "delete", "billing", says="group billing has 1 members")
        self.assertEqual(await self.committed(), {("events", 0): 3, ("events", 1): 1})

    async def test_delete(self):
        result = await self.admin("groups", "delete", "billing")
        self.assertIn("deleted group billing", result.stdout)
        self.assertEqual(await self.committed(), {})
        self.assertNotIn("billing", await self.broker.metadata.groups())
        await self.refused("groups", "delete", "billing", says="no group 'billing'")


class EmbeddedGroupsTests(GroupsContract, AdminCase):
    pass


class S3GroupsTests(GroupsContract, S3Stores, AdminCase):
    pass


class EtcdGroupsTests(GroupsContract, EtcdStores, AdminCase):
    pass
