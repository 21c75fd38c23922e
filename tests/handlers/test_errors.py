"""The translation of the layers' errors into Kafka error codes: each
refusal keeps the code clients saw before the layers had errors of their
own, and its message."""

from twisted.trial.unittest import SynchronousTestCase

from kafscale.coordinator import errors as group
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.metadata.interfaces import Fenced, InvalidPartitions, MetadataUnavailable, TopicExists, UnknownTopic
from kafscale.metadata.topic_configs import InvalidConfig, InvalidTopicName
from kafscale.partition_logs import NotLeader
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.storage import errors as storage
from kafscale.storage.interfaces import ObjectStoreUnavailable
from kafscale.storage.segment import CorruptSegment
from kafscale.topics import InvalidReplicationFactor, PartitionLimit, ReplicaAssignmentRefused, TopicNotReady


class KafkaErrorTests(SynchronousTestCase):
    def test_each_refusal_has_its_code(self):
        cases = [
            (storage.NotOwner("t-0 is not owned here"), ErrorCode.NOT_LEADER_OR_FOLLOWER),
            (storage.StaleLeaderEpoch("epoch 1 is older than 2"), ErrorCode.FENCED_LEADER_EPOCH),
            (storage.NewerLeaderEpoch("epoch 3 is newer than 2"), ErrorCode.UNKNOWN_LEADER_EPOCH),
            (storage.OffsetOutOfRange("offset 9 outside 0..3"), ErrorCode.OFFSET_OUT_OF_RANGE),
            (storage.InvalidBatch("a batch with a producer id must come alone"), ErrorCode.INVALID_RECORD),
            (storage.StaleProducerEpoch("producer 7 epoch 1 is older than 2"), ErrorCode.INVALID_PRODUCER_EPOCH),
            (storage.OutOfOrderSequence("producer 7 sent sequence 5 after 2"),
             ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
            (storage.StorageUnavailable("object store: down"), ErrorCode.KAFKA_STORAGE_ERROR),
            (storage.CommitFailed("metadata store: down"), ErrorCode.REQUEST_TIMED_OUT),
            (storage.LogStartContended("commits kept racing the log start"), ErrorCode.REQUEST_TIMED_OUT),
            (ObjectStoreUnavailable("S3 is down"), ErrorCode.KAFKA_STORAGE_ERROR),
            (CorruptSegment("t/0/segment.kfs", "bad CRC"), ErrorCode.KAFKA_STORAGE_ERROR),
            (group.CoordinatorUnavailable("the group is being removed"), ErrorCode.COORDINATOR_NOT_AVAILABLE),
            (group.NotCoordinator(), ErrorCode.NOT_COORDINATOR),
            (group.InvalidGroupId(), ErrorCode.INVALID_GROUP_ID),
            (group.InvalidSessionTimeout(), ErrorCode.INVALID_SESSION_TIMEOUT),
            (group.InconsistentProtocol(), ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
            (group.MemberIdRequired("client-1"), ErrorCode.MEMBER_ID_REQUIRED),
            (group.UnknownMember(), ErrorCode.UNKNOWN_MEMBER_ID),
            (group.IllegalGeneration(), ErrorCode.ILLEGAL_GENERATION),
            (group.RebalanceInProgress(), ErrorCode.REBALANCE_IN_PROGRESS),
            (group.FencedInstance(), ErrorCode.FENCED_INSTANCE_ID),
            (group.GroupNotFound("Group g not found."), ErrorCode.GROUP_ID_NOT_FOUND),
            (group.GroupNotEmpty(), ErrorCode.NON_EMPTY_GROUP),
            (TopicExists("topic 'events' already exists"), ErrorCode.TOPIC_ALREADY_EXISTS),
            (UnknownTopic("no topic 'events'"), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            (InvalidPartitions("events has 3 partitions"), ErrorCode.INVALID_PARTITIONS),
            (InvalidTopicName("'bad name!' is not a topic name"), ErrorCode.INVALID_TOPIC_EXCEPTION),
            (InvalidConfig("retention.ms must be a number"), ErrorCode.INVALID_CONFIG),
            (InvalidReplicationFactor("the replication factor is 1"), ErrorCode.INVALID_REPLICATION_FACTOR),
            (ReplicaAssignmentRefused("placed by the brokers"), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
            (TopicNotReady("not loaded yet"), ErrorCode.LEADER_NOT_AVAILABLE),
            (PartitionLimit("the cluster may hold at most 6"), ErrorCode.POLICY_VIOLATION),
            (NotLeader("events-0 is not served here"), ErrorCode.NOT_LEADER_OR_FOLLOWER),
        ]
        for error, code in cases:
            self.assertIsInstance(error, REFUSALS)
            answer = kafka_error(error)
            self.assertEqual((answer.code, answer.message), (code, str(error) or None), error)

    def test_other_metadata_failures_are_retriable(self):
        for error in (MetadataUnavailable("etcd: down"), Fenced("events", 0, 3, 10)):
            answer = kafka_error(error)
            self.assertEqual(answer.code, ErrorCode.REQUEST_TIMED_OUT)
            self.assertIn(str(error), answer.message)

    def test_a_kafka_error_is_its_own_answer(self):
        error = KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, "no topic with id 0")
        self.assertIs(kafka_error(error), error)

    def test_a_bug_has_no_code(self):
        self.assertRaises(TypeError, kafka_error, ValueError("a bug"))
