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
