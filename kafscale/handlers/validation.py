"""The checks of a request's shape that several handlers make, each raising
the KafkaError that Kafka answers. What a topic may be (its name, partition
count, replication, configs) is checked in one place below the handlers,
kafscale.topics.Topics, and refused with domain errors that
kafscale.handlers.errors translates."""

from collections import Counter

from kafscale.protocol.errors import ErrorCode, KafkaError


def named_more_than_once(names) -> list:
    """The names a request repeats, in order of first appearance: Kafka
    refuses each of them with INVALID_REQUEST."""
    return [name for name, count in Counter(names).items() if count > 1]


def check_named_once(kind, name, repeated):
    if name in repeated:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"{kind} {name!r} is named more than once")


def replica_lists(assignments, first_index):
    """The replica lists of a request's assignments (entries of
    "partition_index" and "broker_ids"), by partition, or None for none;
    they must name partitions ``first_index`` onwards, each once
    (INVALID_REPLICA_ASSIGNMENT otherwise, as in Kafka)."""
    if not assignments:
        return None
    by_index = {entry["partition_index"]: entry["broker_ids"] for entry in assignments}
    expected = range(first_index, first_index + len(assignments))
    if len(by_index) != len(assignments) or sorted(by_index) != list(expected):
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         f"assignments must name partitions {first_index} to {expected[-1]}, each once")
    return [by_index[index] for index in expected]
