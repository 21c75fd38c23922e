"""Tests for kafscale.protocol.errors."""

from twisted.trial.unittest import SynchronousTestCase

from kafscale.protocol.errors import ErrorCode, KafkaError


class ErrorCodeTests(SynchronousTestCase):
    def test_codes_are_kafkas(self):
        self.assertEqual(ErrorCode.UNKNOWN_SERVER_ERROR, -1)
        self.assertEqual(ErrorCode.NONE, 0)
        self.assertEqual(ErrorCode.OFFSET_OUT_OF_RANGE, 1)
        self.assertEqual(ErrorCode.CORRUPT_MESSAGE, 2)
        self.assertEqual(ErrorCode.NOT_LEADER_OR_FOLLOWER, 6)
        self.assertEqual(ErrorCode.MESSAGE_TOO_LARGE, 10)
        self.assertEqual(ErrorCode.NOT_COORDINATOR, 16)
        self.assertEqual(ErrorCode.REBALANCE_IN_PROGRESS, 27)
        self.assertEqual(ErrorCode.UNSUPPORTED_VERSION, 35)
        self.assertEqual(ErrorCode.TOPIC_ALREADY_EXISTS, 36)
        self.assertEqual(ErrorCode.INVALID_RECORD, 87)
        self.assertEqual(ErrorCode.MEMBER_ID_REQUIRED, 79)
        self.assertEqual(ErrorCode.UNKNOWN_TOPIC_ID, 100)

    def test_no_gaps(self):
        self.assertEqual(sorted(ErrorCode), list(range(-1, max(ErrorCode) + 1)))

    def test_retriable_as_in_kafka(self):
        retriable = [ErrorCode.CORRUPT_MESSAGE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER,
                     ErrorCode.REQUEST_TIMED_OUT, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR,
                     ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.FENCED_LEADER_EPOCH,
                     ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.THROTTLING_QUOTA_EXCEEDED]
        final = [ErrorCode.NONE, ErrorCode.UNKNOWN_SERVER_ERROR, ErrorCode.OFFSET_OUT_OF_RANGE,
                 ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.UNKNOWN_MEMBER_ID,
                 ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.INVALID_RECORD,
                 ErrorCode.TOPIC_ALREADY_EXISTS]
        self.assertEqual([code for code in retriable if not code.retriable], [])
        self.assertEqual([code for code in final if code.retriable], [])


class KafkaErrorTests(SynchronousTestCase):
    def test_carries_code_and_message(self):
        error = KafkaError(3, "no topic 'x'")
        self.assertIs(error.code, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        self.assertEqual(error.message, "no topic 'x'")
        self.assertIn("UNKNOWN_TOPIC_OR_PARTITION", str(error))

    def test_message_is_optional(self):
        error = KafkaError(ErrorCode.NOT_COORDINATOR)
        self.assertIsNone(error.message)
        self.assertEqual(str(error), "NOT_COORDINATOR")

    def test_unknown_code_is_refused(self):
        self.assertRaises(ValueError, KafkaError, 9999)
