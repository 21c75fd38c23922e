"""What the layers' refusals answer on the wire."""

from twisted.trial.unittest import SynchronousTestCase

from kafscale.handlers.errors import kafka_error
from kafscale.metadata.interfaces import Fenced, InvalidPartitions, MetadataUnavailable, TopicExists, UnknownTopic
from kafscale.metadata.topic_configs import InvalidConfig, InvalidTopicName
from kafscale.partition_logs import NotLeader
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.topics import InvalidReplicationFactor, ReplicaAssignmentRefused, TopicNotReady


class KafkaErrorTests(SynchronousTestCase):
    def test_refusals_keep_their_meaning(self):
        cases = [
            (TopicExists("topic 'events' already exists"), ErrorCode.TOPIC_ALREADY_EXISTS),
            (UnknownTopic("no topic 'events'"), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            (InvalidPartitions("events has 3 partitions"), ErrorCode.INVALID_PARTITIONS),
            (InvalidTopicName("topic name '.' is illegal"), ErrorCode.INVALID_TOPIC_EXCEPTION),
            (InvalidConfig("'x' is not a whole number"), ErrorCode.INVALID_CONFIG),
            (InvalidReplicationFactor("the replication factor is 1"), ErrorCode.INVALID_REPLICATION_FACTOR),
            (ReplicaAssignmentRefused("placed by the brokers"), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
            (TopicNotReady("not loaded yet"), ErrorCode.LEADER_NOT_AVAILABLE),
            (NotLeader("events-0 is not served here"), ErrorCode.NOT_LEADER_OR_FOLLOWER),
        ]
        for error, code in cases:
            answer = kafka_error(error)
            self.assertEqual((answer.code, answer.message), (code, str(error)))

    def test_anything_else_from_the_store_is_retriable(self):
        for error in (MetadataUnavailable("etcd: down"), Fenced("events", 0, 3, 10)):
            answer = kafka_error(error)
            self.assertEqual(answer.code, ErrorCode.REQUEST_TIMED_OUT)
            self.assertIn(str(error), str(answer))

    def test_a_kafka_error_answers_itself(self):
        error = KafkaError(ErrorCode.INVALID_REQUEST, "named twice")
        self.assertIs(kafka_error(error), error)
