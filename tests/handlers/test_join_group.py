"""JoinGroup at every version on the wire, with the membership it begins
(SyncGroup, Heartbeat and LeaveGroup at every version along the way), its
refusals, static members, a broker that is not the coordinator, and the
initial rebalance delay a real consumer waits at the defaults."""

import time

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.groups import GroupWireTestCase, heartbeat, join, join_as_new_member, leave, sync
from tests.support.topics import create_topic


class JoinGroupTests(GroupWireTestCase):
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
