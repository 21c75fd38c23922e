"""The one place where the layers' own errors become Kafka error codes.

Below the handlers, topics, partitions and stores refuse with errors named
after what went wrong (`UnknownTopic`, `InvalidPartitions`, `NotLeader`, ...);
a handler catches `REFUSALS` and answers with `kafka_error(error)`.
"""

from kafscale.metadata.interfaces import InvalidPartitions, MetadataError, TopicExists, UnknownTopic
from kafscale.metadata.topic_configs import InvalidConfig, InvalidTopicName
from kafscale.partition_logs import NotLeader
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.topics import (
    InvalidReplicationFactor,
    PartitionLimit,
    ReplicaAssignmentRefused,
    TopicNotReady,
    TopicRefused,
)

REFUSALS = (KafkaError, MetadataError, TopicRefused, InvalidTopicName, InvalidConfig, NotLeader)
"""What a handler answers with an error code rather than letting fail."""

_CODES = [
    (TopicExists, ErrorCode.TOPIC_ALREADY_EXISTS),
    (UnknownTopic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    (InvalidPartitions, ErrorCode.INVALID_PARTITIONS),
    (InvalidTopicName, ErrorCode.INVALID_TOPIC_EXCEPTION),
    (InvalidConfig, ErrorCode.INVALID_CONFIG),
    (InvalidReplicationFactor, ErrorCode.INVALID_REPLICATION_FACTOR),
    (ReplicaAssignmentRefused, ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (TopicNotReady, ErrorCode.LEADER_NOT_AVAILABLE),
    (PartitionLimit, ErrorCode.POLICY_VIOLATION),
    (NotLeader, ErrorCode.NOT_LEADER_OR_FOLLOWER),
]


def kafka_error(error) -> KafkaError:
    """The KafkaError that answers ``error``, one of `REFUSALS`. A metadata
    store failure not named here (unreachable, say) is REQUEST_TIMED_OUT,
    which clients retry."""
    if isinstance(error, KafkaError):
        return error
    for kind, code in _CODES:
        if isinstance(error, kind):
            return KafkaError(code, str(error))
    if isinstance(error, MetadataError):
        return KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"metadata store: {error}")
    raise TypeError(f"no Kafka error code for {error!r}")
