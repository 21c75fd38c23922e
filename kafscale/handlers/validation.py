"""The checks that several handlers make of what a request asks for, each
raising the KafkaError that Kafka answers. What the metadata store checks
itself (a topic's name, existence, partition count) it refuses with its own
errors, which the broker translates."""

from collections import Counter

from kafscale.metadata import topic_configs
from kafscale.protocol.errors import ErrorCode, KafkaError


def named_more_than_once(names) -> list:
    """The names a request repeats, in order of first appearance: Kafka
    refuses each of them with INVALID_REQUEST."""
    return [name for name, count in Counter(names).items() if count > 1]


def check_named_once(kind, name, repeated):
    if name in repeated:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"{kind} {name!r} is named more than once")


def check_replication_factor(replication_factor):
    """-1 (the broker's default) or 1: the object store replicates."""
    if replication_factor not in (-1, 1):
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         "the object store replicates: the replication factor is 1")


def check_no_assignments(assignments):
    if assignments:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         "partitions are placed by the brokers, not by assignment")


def check_partitions_grow(info, count):
    """A topic (``info``, a TopicInfo) grows to ``count`` partitions, never
    shrinks or stays."""
    if count <= info.partitions:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         f"topic {info.name!r} has {info.partitions} partitions: it can grow, not go to {count}")


def check_topic_configs(configs):
    """Topic config values ({name: value}) that Kafka would accept."""
    try:
        topic_configs.validate(configs)
    except topic_configs.InvalidConfig as e:
        raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
