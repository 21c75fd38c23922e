"""What the metadata store's errors answer on the wire."""

from twisted.trial.unittest import SynchronousTestCase

from kafscale.metadata.interfaces import (
    Fenced,
    InvalidPartitions,
    MetadataUnavailable,
    TopicExists,
    UnknownTopic,
    kafka_error,
)
from kafscale.protocol.errors import ErrorCode


class KafkaErrorTests(SynchronousTestCase):
    def test_refusals_keep_their_meaning(self):
        cases = [
            (TopicExists("events"), ErrorCode.TOPIC_ALREADY_EXISTS),
            (UnknownTopic("events"), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            (InvalidPartitions("events has 3 partitions"), ErrorCode.INVALID_PARTITIONS),
        ]
        for error, code in cases:
            self.assertEqual(kafka_error("events", error).code, code)

    def test_anything_else_is_retriable(self):
        for error in (MetadataUnavailable("etcd: down"), Fenced("events", 0, 3, 10)):
            answer = kafka_error("events", error)
            self.assertEqual(answer.code, ErrorCode.REQUEST_TIMED_OUT)
            self.assertIn(str(error), str(answer))
