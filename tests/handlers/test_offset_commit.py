"""OffsetCommit at every version on the wire (each commit read back by
OffsetFetch at every version), its refusals, commits checked against the
group's generation and members, and the admin clients altering a group's
offsets."""

import uuid

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.groups import join_as_new_member
from tests.support.offsets import OffsetsWireTestCase, commit, commit_errors, fetch_offsets
from tests.support.topics import create_topic


class OffsetCommitTests(OffsetsWireTestCase):
    async def test_commit_and_fetch_at_every_version(self):
        def run():
            connection = self.connection()
            for version in range(2, 11):
                group_id = f"simple-{version}"
                committed = commit(connection, version, group_id, self.topic,
                                   [(0, 10 + version, 4, "meta"), (1, 5, -1, None)])
                self.assertEqual(commit_errors(committed), [(0, ErrorCode.NONE), (1, ErrorCode.NONE)])
                self.assertEqual(committed["topics"][0]["topic_id" if version >= 10 else "name"],
                                 self.topic.topic_id if version >= 10 else "t")
                for fetch_version in range(1, 11):
                    if (fetch_version >= 10) != (version >= 10):
                        continue  # topic ids and names do not mix
                    error, offsets = fetch_offsets(connection, fetch_version, {group_id: [(self.topic, [0, 1, 2])]})[group_id]
                    self.assertEqual(error, ErrorCode.NONE)
                    # Commits carry a leader epoch from v6, fetches show it from v5.
                    epoch = 4 if version >= 6 and fetch_version >= 5 else -1
                    self.assertEqual(offsets, {
                        self.key(fetch_version, 0): (10 + version, epoch, "meta", ErrorCode.NONE),
                        self.key(fetch_version, 1): (5, -1, "", ErrorCode.NONE),
                        self.key(fetch_version, 2): (-1, -1, "", ErrorCode.NONE),  # never committed
                    })
                    if fetch_version >= 2:
                        _, everything = fetch_offsets(connection, fetch_version, {group_id: None})[group_id]
                        self.assertEqual(sorted(everything), [self.key(fetch_version, 0), self.key(fetch_version, 1)])

        await in_thread(run)

    async def test_commit_refusals(self):
        from kafscale.metadata.interfaces import TopicInfo

        missing = TopicInfo("missing", uuid.uuid4(), 1, {}, 0)

        def run():
            connection = self.connection()
            # Partitions that do not exist, and metadata beyond offset.metadata.max.bytes
            refused = commit(connection, 9, "g", self.topic,
                             [(3, 1, -1, ""), (0, 1, -1, "x" * 4097), (1, 1, -1, "x" * 4096)])
            self.assertEqual(commit_errors(refused), [(3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                                      (0, ErrorCode.OFFSET_METADATA_TOO_LARGE), (1, ErrorCode.NONE)])
            self.assertEqual(commit_errors(commit(connection, 9, "g", missing, [(0, 1, -1, "")])),
                             [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])
            self.assertEqual(commit_errors(commit(connection, 10, "g", missing, [(0, 1, -1, "")])),
                             [(0, ErrorCode.UNKNOWN_TOPIC_ID)])
            _, offsets = fetch_offsets(connection, 10, {"g": [(missing, [0])]})["g"]
            self.assertEqual(offsets, {(missing.topic_id, 0): (-1, -1, "", ErrorCode.UNKNOWN_TOPIC_ID)})
            # A commit in a generation, for a group that does not exist
            self.assertEqual(commit_errors(commit(connection, 8, "nobody", self.topic, [(0, 1, -1, "")], 3, "m")),
                             [(0, ErrorCode.ILLEGAL_GENERATION)])
            self.assertEqual(commit_errors(commit(connection, 9, "nobody", self.topic, [(0, 1, -1, "")], 3, "m")),
                             [(0, ErrorCode.GROUP_ID_NOT_FOUND)])

        await in_thread(run)

    async def test_commits_checked_against_the_group(self):
        def run():
            connection = self.connection()
            joined = join_as_new_member(self, connection, 9, "managed")
            member_id = joined["member_id"]

            def attempt(generation, member):
                return commit_errors(commit(connection, 9, "managed", self.topic, [(0, 7, -1, "")], generation, member))

            # The member's generation has not received its assignment yet.
            self.assertEqual(attempt(1, member_id), [(0, ErrorCode.REBALANCE_IN_PROGRESS)])
            connection.request(ApiKey.SYNC_GROUP, 5, {
                "group_id": "managed", "generation_id": 1, "member_id": member_id, "group_instance_id": None,
                "protocol_type": "consumer", "protocol_name": "range", "assignments": [],
            })
            self.assertEqual(attempt(1, member_id), [(0, ErrorCode.NONE)])
            self.assertEqual(attempt(2, member_id), [(0, ErrorCode.ILLEGAL_GENERATION)])
            self.assertEqual(attempt(1, "stranger"), [(0, ErrorCode.UNKNOWN_MEMBER_ID)])
            self.assertEqual(attempt(-1, ""), [(0, ErrorCode.UNKNOWN_MEMBER_ID)])  # the group is not empty

        await in_thread(run)


class AdminOffsetsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "t", partitions=2)

    async def test_confluent_alter_and_list(self):
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import AdminClient

        def run():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            offsets = [TopicPartition("t", 0, 12), TopicPartition("t", 1, 3)]
            wanted = ConsumerGroupTopicPartitions("admin-group", offsets)
            admin.alter_consumer_group_offsets([wanted])["admin-group"].result(10)
            request = ConsumerGroupTopicPartitions("admin-group", [TopicPartition("t", 0), TopicPartition("t", 1)])
            return admin.list_consumer_group_offsets([request])["admin-group"].result(10)

        listed = await in_thread(run)
        self.assertEqual([(p.partition, p.offset, p.error) for p in listed.topic_partitions],
                         [(0, 12, None), (1, 3, None)])

    async def test_kafka_python_alter_and_list(self):
        from kafka.admin import KafkaAdminClient
        from kafka.structs import OffsetAndMetadata, TopicPartition

        def run():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.alter_group_offsets("admin-group", {TopicPartition("t", 1): OffsetAndMetadata(8, "note", -1)})
                return admin.list_group_offsets("admin-group")
            finally:
                admin.close()

        listed = await in_thread(run)
        self.assertEqual({tp: (o.offset, o.metadata) for tp, o in listed["admin-group"].items()},
                         {TopicPartition("t", 1): (8, "note")})
