"""The one place where the lower layers' errors become Kafka error codes.

Storage, metadata, the group coordinator, the topics and the partition logs
refuse with exceptions named after what happened
(:mod:`kafscale.storage.errors`, :mod:`kafscale.coordinator.errors`, the
metadata store's `MetadataError`s, `kafscale.topics.TopicRefused`,
`kafscale.partition_logs.NotLeader`); a handler catches `REFUSALS` and
answers with the code and message of `kafka_error(error)`. Anything else a
handler meets is a bug, and fails the request (the server logs it and
closes the connection).
"""

from kafscale.coordinator import errors as group
from kafscale.metadata.interfaces import InvalidPartitions, MetadataError, TopicExists, UnknownTopic
from kafscale.metadata.topic_configs import InvalidConfig, InvalidTopicName
from kafscale.partition_logs import NotLeader
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.security.sasl import AuthenticationFailed, IllegalSaslState, UnsupportedMechanism
from kafscale.security.scram import InvalidCredential
from kafscale.storage import errors as storage
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.segment import CorruptSegment
from kafscale.topics import (
    InvalidReplicationFactor,
    InvalidTopicRequest,
    PartitionLimit,
    ReplicaAssignmentRefused,
    TopicNotReady,
    TopicRefused,
)

STORAGE_ERRORS = (ObjectStoreError, CorruptSegment)
"""What reading committed segments raises when the object store fails or
holds a damaged object: KAFKA_STORAGE_ERROR for that partition."""

REFUSALS = (KafkaError, storage.PartitionError, group.GroupError, MetadataError, TopicRefused, InvalidTopicName,
            InvalidConfig, NotLeader, AuthenticationFailed, IllegalSaslState, UnsupportedMechanism,
            InvalidCredential, *STORAGE_ERRORS)
"""What a handler answers with an error code rather than letting fail."""

_CODES = [
    # storage
    (storage.NotOwner, ErrorCode.NOT_LEADER_OR_FOLLOWER),
    (storage.StaleLeaderEpoch, ErrorCode.FENCED_LEADER_EPOCH),
    (storage.NewerLeaderEpoch, ErrorCode.UNKNOWN_LEADER_EPOCH),
    (storage.OffsetOutOfRange, ErrorCode.OFFSET_OUT_OF_RANGE),
    (storage.InvalidBatch, ErrorCode.INVALID_RECORD),
    (storage.StaleProducerEpoch, ErrorCode.INVALID_PRODUCER_EPOCH),
    (storage.OutOfOrderSequence, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (storage.StorageUnavailable, ErrorCode.KAFKA_STORAGE_ERROR),
    (storage.CommitFailed, ErrorCode.REQUEST_TIMED_OUT),
    (storage.LogStartContended, ErrorCode.REQUEST_TIMED_OUT),
    (STORAGE_ERRORS, ErrorCode.KAFKA_STORAGE_ERROR),
    (NotLeader, ErrorCode.NOT_LEADER_OR_FOLLOWER),
    # the group coordinator
    (group.CoordinatorUnavailable, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (group.NotCoordinator, ErrorCode.NOT_COORDINATOR),
    (group.InvalidGroupId, ErrorCode.INVALID_GROUP_ID),
    (group.InvalidSessionTimeout, ErrorCode.INVALID_SESSION_TIMEOUT),
    (group.InconsistentProtocol, ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
    (group.MemberIdRequired, ErrorCode.MEMBER_ID_REQUIRED),
    (group.UnknownMember, ErrorCode.UNKNOWN_MEMBER_ID),
    (group.IllegalGeneration, ErrorCode.ILLEGAL_GENERATION),
    (group.RebalanceInProgress, ErrorCode.REBALANCE_IN_PROGRESS),
    (group.FencedInstance, ErrorCode.FENCED_INSTANCE_ID),
    (group.GroupNotFound, ErrorCode.GROUP_ID_NOT_FOUND),
    (group.GroupNotEmpty, ErrorCode.NON_EMPTY_GROUP),
    (group.ConcurrentTransactions, ErrorCode.CONCURRENT_TRANSACTIONS),
    (group.ProducerFenced, ErrorCode.PRODUCER_FENCED),
    (group.InvalidProducerIdMapping, ErrorCode.INVALID_PRODUCER_ID_MAPPING),
    (group.InvalidTxnState, ErrorCode.INVALID_TXN_STATE),
    (group.InvalidTransactionTimeout, ErrorCode.INVALID_TRANSACTION_TIMEOUT),
    (storage.TransactionNotVerified, ErrorCode.INVALID_TXN_STATE),
    (group.SubscribedToTopic, ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC),
    # topics
    (TopicExists, ErrorCode.TOPIC_ALREADY_EXISTS),
    (UnknownTopic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (InvalidPartitions, ErrorCode.INVALID_PARTITIONS),
    (InvalidTopicName, ErrorCode.INVALID_TOPIC_EXCEPTION),
    (InvalidConfig, ErrorCode.INVALID_CONFIG),
    (InvalidReplicationFactor, ErrorCode.INVALID_REPLICATION_FACTOR),
    (ReplicaAssignmentRefused, ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (InvalidTopicRequest, ErrorCode.INVALID_REQUEST),
    (TopicNotReady, ErrorCode.LEADER_NOT_AVAILABLE),
    (PartitionLimit, ErrorCode.POLICY_VIOLATION),
    (NotLeader, ErrorCode.NOT_LEADER_OR_FOLLOWER),
    # authentication
    (AuthenticationFailed, ErrorCode.SASL_AUTHENTICATION_FAILED),
    (IllegalSaslState, ErrorCode.ILLEGAL_SASL_STATE),
    (UnsupportedMechanism, ErrorCode.UNSUPPORTED_SASL_MECHANISM),
    (InvalidCredential, ErrorCode.UNACCEPTABLE_CREDENTIAL),
]


def kafka_error(error) -> KafkaError:
    """The KafkaError that answers ``error``, one of `REFUSALS`, with its
    message. A metadata store failure not named here (unreachable, say) is
    REQUEST_TIMED_OUT, which clients retry."""
    if isinstance(error, KafkaError):
        return error
    for kind, code in _CODES:
        if isinstance(error, kind):
            return KafkaError(code, str(error) or None)
    if isinstance(error, MetadataError):
        return KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"metadata store: {error}")
    raise TypeError(f"no Kafka error code for {error!r}")
