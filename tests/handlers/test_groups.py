"""Consumer groups through the wire at every version, and through real
clients: confluent-kafka, kafka-python and aiokafka consumers sharing
partitions, leaving, dying and restarting as static members, and the admin
clients describing, listing and deleting groups."""

import os
import signal
import subprocess
import sys
import threading
import time

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import SOURCE_ROOT, in_thread, start_broker
from tests.support.groups import FAST_CONSUMER, FAST_REBALANCES, join, join_as_new_member
from tests.support.topics import create_topic
from tests.support.waiting import eventually
from tests.support.wire import Connection

INT32_MIN = -(2**31)
# READ, DELETE and DESCRIBE, as bits: what Kafka reports without an authorizer.
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


def sync(connection, version, group_id, member_id, generation, assignments=(), instance=None):
    return connection.request(ApiKey.SYNC_GROUP, version, {
        "group_id": group_id, "generation_id": generation, "member_id": member_id,
        "group_instance_id": instance, "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": m, "assignment": a} for m, a in assignments],
    })


def heartbeat(connection, version, group_id, member_id, generation, instance=None):
    return connection.request(ApiKey.HEARTBEAT, version, {
        "group_id": group_id, "generation_id": generation, "member_id": member_id, "group_instance_id": instance,
    })["error_code"]


def leave(connection, version, group_id, member_id):
    return connection.request(ApiKey.LEAVE_GROUP, version, {
        "group_id": group_id, "member_id": member_id,
        "members": [{"member_id": member_id, "group_instance_id": None, "reason": "done"}],
    })


class WireTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)

    def connection(self):
        connection = Connection(self.bootstrap)
        self.addCleanup(connection.close)
        return connection

    async def test_membership_at_every_version(self):
        def run():
            connection = self.connection()
            for version in range(10):
                group_id = f"wire-{version}"
                joined = join_as_new_member(self, connection, version, group_id)
                member_id = joined["member_id"]
                self.assertEqual((joined["generation_id"], joined["protocol_name"], joined["leader"]),
                                 (1, "range", member_id))
                self.assertTrue(member_id.startswith("tests-"))
                self.assertEqual([(m["member_id"], m["metadata"]) for m in joined["members"]], [(member_id, b"meta")])
                if version >= 7:
                    self.assertEqual(joined["protocol_type"], "consumer")

                sync_version, heartbeat_version, leave_version = min(version, 5), min(version, 4), min(version, 5)
                synced = sync(connection, sync_version, group_id, member_id, 1, [(member_id, b"mine")])
                self.assertEqual((synced["error_code"], synced["assignment"]), (ErrorCode.NONE, b"mine"))
                if sync_version == 5:
                    self.assertEqual((synced["protocol_type"], synced["protocol_name"]), ("consumer", "range"))

                self.assertEqual(heartbeat(connection, heartbeat_version, group_id, member_id, 1), ErrorCode.NONE)
                self.assertEqual(heartbeat(connection, heartbeat_version, group_id, member_id, 7),
                                 ErrorCode.ILLEGAL_GENERATION)
                self.assertEqual(heartbeat(connection, heartbeat_version, group_id, "stranger", 1),
                                 ErrorCode.UNKNOWN_MEMBER_ID)

                left = leave(connection, leave_version, group_id, member_id)
                self.assertEqual(left["error_code"], ErrorCode.NONE)
                if leave_version >= 3:
                    self.assertEqual([(m["member_id"], m["error_code"]) for m in left["members"]],
                                     [(member_id, ErrorCode.NONE)])
                else:
                    self.assertEqual(leave(connection, leave_version, group_id, member_id)["error_code"],
                                     ErrorCode.UNKNOWN_MEMBER_ID)
                self.assertEqual(heartbeat(connection, heartbeat_version, group_id, member_id, 1),
                                 ErrorCode.UNKNOWN_MEMBER_ID)

        await in_thread(run)

    async def test_join_errors(self):
        def run():
            connection = self.connection()
            self.assertEqual(join(connection, 9, "")["error_code"], ErrorCode.INVALID_GROUP_ID)
            self.assertEqual(join(connection, 9, "g", member_id="made-up")["error_code"], ErrorCode.UNKNOWN_MEMBER_ID)
            joined = join_as_new_member(self, connection, 9, "g")
            refused = join(connection, 9, "g", protocols=[("roundrobin", b"")])
            self.assertEqual((refused["error_code"], refused["protocol_name"]),
                             (ErrorCode.INCONSISTENT_GROUP_PROTOCOL, None))
            old = join(connection, 6, "g", protocols=[("roundrobin", b"")])
            self.assertEqual((old["error_code"], old["protocol_name"]), (ErrorCode.INCONSISTENT_GROUP_PROTOCOL, ""))
            self.assertEqual(sync(connection, 5, "g", joined["member_id"], 2)["error_code"],
                             ErrorCode.ILLEGAL_GENERATION)

        await in_thread(run)

    async def test_rebalance_when_a_member_joins(self):
        first, second = self.connection(), self.connection()

        def start():
            joined = join_as_new_member(self, first, 9, "pair")
            sync(first, 5, "pair", joined["member_id"], 1, [(joined["member_id"], b"all")])
            return joined["member_id"]

        leader_id = await in_thread(start)
        newcomer = in_thread(join_as_new_member, self, second, 9, "pair")

        def leader_rejoins():
            deadline = time.monotonic() + 10
            while heartbeat(first, 4, "pair", leader_id, 1) != ErrorCode.REBALANCE_IN_PROGRESS:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            return join(first, 9, "pair", member_id=leader_id)

        rejoined = await in_thread(leader_rejoins)
        joined = await newcomer
        self.assertEqual((rejoined["generation_id"], joined["generation_id"]), (2, 2))
        self.assertEqual((rejoined["leader"], joined["leader"]), (leader_id, leader_id))
        self.assertEqual(sorted(m["member_id"] for m in rejoined["members"]), sorted([leader_id, joined["member_id"]]))
        self.assertEqual(joined["members"], [])

        follower_sync = in_thread(sync, second, 5, "pair", joined["member_id"], 2)
        assignments = [(leader_id, b"half 1"), (joined["member_id"], b"half 2")]
        leader_sync = await in_thread(sync, first, 5, "pair", leader_id, 2, assignments)
        self.assertEqual(leader_sync["assignment"], b"half 1")
        self.assertEqual((await follower_sync)["assignment"], b"half 2")

    async def test_static_member_restart_keeps_its_assignment(self):
        for version in (5, 9):
            def run():
                connection = self.connection()
                group_id = f"static-{version}"
                first = join_as_new_member(self, connection, version, group_id, instance="instance-1")
                old_id = first["member_id"]
                self.assertTrue(old_id.startswith("instance-1-"))
                sync(connection, min(version, 5), group_id, old_id, 1, [(old_id, b"kept")], instance="instance-1")
                # The process restarts: a new connection, no member id.
                again = join(self.connection(), version, group_id, instance="instance-1")
                new_id = again["member_id"]
                self.assertNotEqual(new_id, old_id)
                self.assertEqual(again["generation_id"], 1)
                if version >= 9:
                    # The leader is told to keep the current assignment.
                    self.assertEqual((again["leader"], again["skip_assignment"]), (new_id, True))
                    self.assertEqual([m["member_id"] for m in again["members"]], [new_id])
                else:
                    self.assertEqual((again["leader"], again["members"]), (old_id, []))
                synced = sync(connection, 5, group_id, new_id, 1, instance="instance-1")
                self.assertEqual(synced["assignment"], b"kept")
                self.assertEqual(heartbeat(connection, 4, group_id, old_id, 1, "instance-1"),
                                 ErrorCode.FENCED_INSTANCE_ID)
                self.assertEqual(heartbeat(connection, 4, group_id, new_id, 1, "instance-1"), ErrorCode.NONE)

            await in_thread(run)

    async def test_describe_list_delete_at_every_version(self):
        def run():
            connection = self.connection()
            busy = join_as_new_member(self, connection, 9, "busy")
            sync(connection, 5, "busy", busy["member_id"], 1, [(busy["member_id"], b"assigned")])
            empty = join_as_new_member(self, connection, 9, "empty")
            leave(connection, 5, "empty", empty["member_id"])

            for version in range(7):
                described = connection.request(ApiKey.DESCRIBE_GROUPS, version, {
                    "groups": ["busy", "empty", "unknown"], "include_authorized_operations": False,
                })["groups"]
                self.assertEqual([(g["group_id"], g["group_state"], g["protocol_type"], g["protocol_data"])
                                  for g in described[:2]],
                                 [("busy", "Stable", "consumer", "range"), ("empty", "Empty", "consumer", "")])
                [member] = described[0]["members"]
                self.assertEqual((member["member_id"], member["client_id"], member["client_host"],
                                  member["member_metadata"], member["member_assignment"]),
                                 (busy["member_id"], "tests", "/127.0.0.1", b"meta", b"assigned"))
                unknown = described[2]
                self.assertEqual(unknown["group_state"], "Dead")
                if version >= 6:
                    self.assertEqual(unknown["error_code"], ErrorCode.GROUP_ID_NOT_FOUND)
                    self.assertEqual(unknown["error_message"], "Group unknown not found.")
                else:
                    self.assertEqual(unknown["error_code"], ErrorCode.NONE)
                if version >= 3:
                    self.assertEqual({g["authorized_operations"] for g in described}, {INT32_MIN})
                    asked = connection.request(ApiKey.DESCRIBE_GROUPS, version, {
                        "groups": ["busy"], "include_authorized_operations": True,
                    })["groups"]
                    self.assertEqual(asked[0]["authorized_operations"], GROUP_OPERATIONS)

            for version in range(6):
                listed = connection.request(ApiKey.LIST_GROUPS, version, {"states_filter": [], "types_filter": []})
                self.assertEqual(listed["error_code"], ErrorCode.NONE)
                self.assertEqual([(g["group_id"], g["protocol_type"]) for g in listed["groups"]],
                                 [("busy", "consumer"), ("empty", "consumer")])
                if version >= 4:
                    self.assertEqual([g["group_state"] for g in listed["groups"]], ["Stable", "Empty"])
                    stable = connection.request(ApiKey.LIST_GROUPS, version, {"states_filter": ["stable"]})
                    self.assertEqual([g["group_id"] for g in stable["groups"]], ["busy"])
                if version >= 5:
                    self.assertEqual({g["group_type"] for g in listed["groups"]}, {"classic"})
                    for types, expected in ((["consumer"], []), (["Classic"], ["busy", "empty"])):
                        typed = connection.request(ApiKey.LIST_GROUPS, 5, {"types_filter": types})
                        self.assertEqual([g["group_id"] for g in typed["groups"]], expected)

            for version in range(3):
                deleted = connection.request(ApiKey.DELETE_GROUPS, version, {"groups_names": ["busy", "unknown"]})
                self.assertEqual([(r["group_id"], r["error_code"]) for r in deleted["results"]],
                                 [("busy", ErrorCode.NON_EMPTY_GROUP), ("unknown", ErrorCode.GROUP_ID_NOT_FOUND)])
            deleted = connection.request(ApiKey.DELETE_GROUPS, 2, {"groups_names": ["empty"]})
            self.assertEqual(deleted["results"], [{"group_id": "empty", "error_code": ErrorCode.NONE}])
            listed = connection.request(ApiKey.LIST_GROUPS, 0, {})
            self.assertEqual([g["group_id"] for g in listed["groups"]], ["busy"])

        await in_thread(run)

    async def test_not_the_coordinator(self):
        from kafscale.metadata.interfaces import BrokerInfo

        elsewhere = BrokerInfo(7, "127.0.0.1", 1, None, 0)
        self.patch(self.broker.view, "coordinator_for", lambda group_id: elsewhere)
        self.patch(self.broker.view, "coordinates", lambda group_id: False)

        def run():
            connection = self.connection()
            self.assertEqual(join(connection, 9, "g")["error_code"], ErrorCode.NOT_COORDINATOR)
            self.assertEqual(heartbeat(connection, 4, "g", "m", 1), ErrorCode.NOT_COORDINATOR)
            described = connection.request(ApiKey.DESCRIBE_GROUPS, 5, {"groups": ["g"]})["groups"][0]
            self.assertEqual((described["error_code"], described["group_state"]), (ErrorCode.NOT_COORDINATOR, ""))
            deleted = connection.request(ApiKey.DELETE_GROUPS, 2, {"groups_names": ["g"]})["results"][0]
            self.assertEqual(deleted["error_code"], ErrorCode.NOT_COORDINATOR)

        await in_thread(run)


class PollingConsumer:
    """A confluent-kafka consumer polling in a thread of its own, recording
    what it is assigned and revoked."""

    def __init__(self, bootstrap, group_id, topic, **settings):
        from confluent_kafka import Consumer

        self.assigned = set()
        self.revocations = 0
        self._stopping = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, **FAST_CONSUMER, **settings})
        self._consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._poll, name=f"consumer {group_id}")
        self._thread.start()

    def _on_assign(self, consumer, partitions):
        self.assigned = {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        self.revocations += 1
        self.assigned = set()

    def _poll(self):
        try:
            while not self._stopping.is_set():
                self._consumer.poll(0.05)
        finally:
            self._consumer.close()

    def close(self):
        """Leave the group (a static member just goes) and wait for it."""
        self._stopping.set()
        self._thread.join()


CONSUMER_PROCESS = """
import sys
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
consumer.subscribe([sys.argv[3]])
while True:
    consumer.poll(0.1)
"""


class ConfluentConsumerTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    def consumer(self, group_id, **settings):
        consumer = PollingConsumer(self.bootstrap, group_id, "four", **settings)
        self.addCleanup(in_thread, consumer.close)
        return consumer

    async def test_two_members_split_and_the_survivor_takes_all_on_leave(self):
        one, two = self.consumer("split"), self.consumer("split")
        await eventually(lambda: len(one.assigned) == len(two.assigned) == 2, timeout=20)
        self.assertEqual(one.assigned | two.assigned, {0, 1, 2, 3})
        await in_thread(two.close)
        waited = await eventually(lambda: one.assigned == {0, 1, 2, 3}, timeout=20)
        self.assertLess(waited, 3)  # LeaveGroup: no session timeout to wait for

    async def test_survivor_takes_all_when_a_member_dies(self):
        survivor = self.consumer("dying")
        env = dict(os.environ, PYTHONPATH=SOURCE_ROOT)
        process = subprocess.Popen([sys.executable, "-c", CONSUMER_PROCESS, self.bootstrap, "dying", "four"], env=env)
        self.addCleanup(lambda: process.poll() is not None or process.kill())
        await eventually(lambda: len(survivor.assigned) == 2, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = time.monotonic()
        await eventually(lambda: survivor.assigned == {0, 1, 2, 3}, timeout=20)
        # After the dead member's 6 s session, not long after.
        self.assertGreater(time.monotonic() - killed, 5)
        self.assertLess(time.monotonic() - killed, 9)

    async def test_static_member_restart_within_session_keeps_partitions(self):
        one = self.consumer("static", **{"group.instance.id": "one"})
        two = self.consumer("static", **{"group.instance.id": "two"})
        await eventually(lambda: len(one.assigned) == len(two.assigned) == 2, timeout=20)
        kept, revocations = set(two.assigned), one.revocations
        await in_thread(two.close)  # a static member leaves no LeaveGroup behind
        again = self.consumer("static", **{"group.instance.id": "two"})
        await eventually(lambda: again.assigned == kept, timeout=20)
        self.assertEqual(one.revocations, revocations)
        described = self.broker.groups._groups["static"].describe()
        self.assertEqual(described.state, "Stable")
        self.assertEqual(sorted(m.group_instance_id for m in described.members), ["one", "two"])


class DefaultTimingTests(unittest.TestCase):
    """At the broker's and the client's defaults (initial rebalance delay
    3 s, session 45 s)."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        # One partition: with more, librdkafka's first Fetch may go out for
        # an empty partition alone and wait its 500 ms fetch.wait.max.ms
        # before asking for the one with the message.
        await create_topic(self.bootstrap, "timed", partitions=1)
        from tests.support.clients import produce

        await in_thread(produce, self.bootstrap, "timed", [(None, b"first", None, 0)])

    async def test_time_to_first_message(self):
        from confluent_kafka import Consumer

        def first_message():
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "timed",
                                 "auto.offset.reset": "earliest"})
            try:
                started = time.monotonic()
                consumer.subscribe(["timed"])
                while True:
                    message = consumer.poll(0.05)
                    if message is not None and not message.error():
                        return message.value(), time.monotonic() - started
                    self.assertLess(time.monotonic() - started, 10)
            finally:
                consumer.close()

        value, seconds = await in_thread(first_message)
        self.assertEqual(value, b"first")
        self.assertGreaterEqual(seconds, 3)  # the initial rebalance delay, as Kafka
        self.assertLessEqual(seconds, 3.5)


class PythonClientMembershipTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    async def test_kafka_python_members_split_and_rebalance_on_leave(self):
        from kafka import KafkaConsumer

        def consumer():
            return KafkaConsumer("four", bootstrap_servers=self.bootstrap, group_id="kp",
                                 session_timeout_ms=6000, heartbeat_interval_ms=500)

        def poll_until(consumers, wanted, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for c in consumers:
                    c.poll(timeout_ms=50)
                sizes = [len(c.assignment()) for c in consumers]
                if sizes == wanted:
                    return
            raise AssertionError(f"assignment sizes {sizes}, not {wanted}")

        def run():
            one = consumer()
            two = consumer()
            try:
                poll_until([one, two], [2, 2])
                self.assertEqual({p.partition for p in one.assignment() | two.assignment()}, {0, 1, 2, 3})
            finally:
                two.close()
            try:
                poll_until([one], [4])
            finally:
                one.close()

        await in_thread(run)

    async def test_aiokafka_members_split_and_rebalance_on_leave(self):
        import asyncio

        from aiokafka import AIOKafkaConsumer

        async def run():
            def consumer():
                return AIOKafkaConsumer("four", bootstrap_servers=self.bootstrap, group_id="aio",
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)

            async def until(condition):
                async with asyncio.timeout(20):
                    while not condition():
                        await asyncio.sleep(0.05)

            one, two = consumer(), consumer()
            await one.start()
            await two.start()
            try:
                await until(lambda: len(one.assignment()) == len(two.assignment()) == 2)
            finally:
                await two.stop()
            try:
                await until(lambda: len(one.assignment()) == 4)
            finally:
                await one.stop()

        await in_thread(asyncio.run, run())


class AdminClientTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    async def form_group(self):
        member = PollingConsumer(self.bootstrap, "watched", "four", **{"client.id": "member-client"})
        self.addCleanup(in_thread, member.close)
        await eventually(lambda: len(member.assigned) == 4, timeout=20)
        return member

    async def test_confluent_admin(self):
        from confluent_kafka import ConsumerGroupState
        from confluent_kafka.admin import AdminClient

        member = await self.form_group()
        admin = AdminClient({"bootstrap.servers": self.bootstrap})

        def describe_and_list():
            described = admin.describe_consumer_groups(["watched"])["watched"].result(10)
            listed = admin.list_consumer_groups().result(10)
            return described, listed

        described, listed = await in_thread(describe_and_list)
        self.assertEqual(described.state, ConsumerGroupState.STABLE)
        self.assertEqual(described.partition_assignor, "range")
        [info] = described.members
        self.assertEqual(info.client_id, "member-client")
        self.assertEqual(info.host, "/127.0.0.1")
        self.assertEqual(sorted(p.partition for p in info.assignment.topic_partitions), [0, 1, 2, 3])
        self.assertEqual([(g.group_id, g.state) for g in listed.valid], [("watched", ConsumerGroupState.STABLE)])

        def delete():
            return admin.delete_consumer_groups(["watched"])["watched"].exception(10)

        self.assertIn("not empty", str(await in_thread(delete)).lower())
        await in_thread(member.close)
        self.assertIsNone(await in_thread(lambda: admin.delete_consumer_groups(["watched"])["watched"].result(10)))
        self.assertEqual((await in_thread(lambda: admin.list_consumer_groups().result(10))).valid, [])

    async def test_kafka_python_admin(self):
        from kafka.admin import KafkaAdminClient

        member = await self.form_group()

        def run():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                described = admin.describe_groups(["watched"])
                listed = admin.list_groups()
                refused = admin.delete_groups(["watched"])
                member.close()
                deleted = admin.delete_groups(["watched"])
                return described, listed, refused, deleted, admin.list_groups()
            finally:
                admin.close()

        described, listed, refused, deleted, after = await in_thread(run)
        group = described["watched"]
        self.assertEqual((group["error"], group["group_state"], group["protocol_type"], group["protocol_data"]),
                         (None, "Stable", "consumer", "range"))
        [info] = group["members"]
        self.assertEqual((info["client_id"], info["client_host"]), ("member-client", "/127.0.0.1"))
        self.assertEqual([(g["group_id"], g["protocol_type"], g["group_state"]) for g in listed],
                         [("watched", "consumer", "Stable")])
        self.assertEqual(refused, {"watched": "NonEmptyGroupError"})
        self.assertEqual(deleted, {"watched": "OK"})
        self.assertEqual(after, [])
