"""DescribeGroups at every version on the wire (a busy, an empty and an
unknown group), and the admin clients (confluent-kafka, kafka-python)
describing, listing and deleting a group: one walk through all three
APIs, as the admin clients use them."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.groups import FAST_REBALANCES, GroupWireTestCase, PollingConsumer, busy_and_empty_groups
from tests.support.topics import create_topic
from tests.support.waiting import eventually


INT32_MIN = -(2**31)

# READ, DELETE and DESCRIBE, as bits: what Kafka reports without an authorizer.
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)


class DescribeGroupsTests(GroupWireTestCase):
    async def test_every_version(self):
        def run():
            connection = self.connection()
            busy = busy_and_empty_groups(self, connection)

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

        await in_thread(run)


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
