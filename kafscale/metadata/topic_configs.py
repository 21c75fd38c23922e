"""Topic configs: the Kafka-named settings Kafscale knows, their defaults,
and validation. The store keeps only what was set explicitly."""

import re
from dataclasses import dataclass
from typing import Callable

TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME = 249


class InvalidConfig(ValueError):
    """A config name or value Kafscale cannot accept; the text says why."""


class InvalidTopicName(ValueError):
    pass


def check_topic_name(name):
    if not name or name in (".", ".."):
        raise InvalidTopicName(f"topic name {name!r} is illegal")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicName(f"topic name is {len(name)} characters, more than {MAX_TOPIC_NAME}")
    if not TOPIC_NAME.fullmatch(name):
        raise InvalidTopicName(
            f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_' and '-'"
        )


@dataclass(frozen=True, slots=True)
class ConfigKey:
    name: str
    default: str
    type: str  # Kafka's config type name: LONG, INT, STRING, BOOLEAN, DOUBLE, LIST
    doc: str
    check: Callable[[str], None]


def _long(minimum):
    def check(value):
        try:
            number = int(value)
        except ValueError:
            raise InvalidConfig(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise InvalidConfig(f"{number} is below the minimum {minimum}")
    return check


def _one_of(*choices, refused=None):
    def check(value):
        if refused and value in refused:
            raise InvalidConfig(refused[value])
        if value not in choices:
            raise InvalidConfig(f"{value!r} is not one of {', '.join(choices)}")
    return check


def _ratio(value):
    try:
        number = float(value)
    except ValueError:
        raise InvalidConfig(f"{value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise InvalidConfig(f"{number} is outside 0..1")


_KEYS = [
    ConfigKey("retention.ms", "604800000", "LONG",
              "How long a segment is kept after its newest record; -1 keeps it forever.", _long(-1)),
    ConfigKey("retention.bytes", "-1", "LONG",
              "Largest size a partition may grow to before its oldest segments are dropped; -1 for no limit.",
              _long(-1)),
    ConfigKey("max.message.bytes", "1048588", "INT",
              "Largest record batch accepted by produce.", _long(0)),
    ConfigKey("segment.bytes", "8388608", "INT",
              "Largest segment object a flush writes.", _long(1024)),
    ConfigKey("segment.ms", "604800000", "LONG",
              "Kafka's segment roll time; every flush already writes a new immutable segment.", _long(1)),
    ConfigKey("cleanup.policy", "delete", "LIST",
              "Only delete: old segments are dropped by retention.",
              _one_of("delete", refused={
                  "compact": "compacted topics are not supported: segments are never rewritten",
                  "compact,delete": "compacted topics are not supported: segments are never rewritten",
                  "delete,compact": "compacted topics are not supported: segments are never rewritten",
              })),
    ConfigKey("message.timestamp.type", "CreateTime", "STRING",
              "Only CreateTime: the broker never rewrites batches, so it keeps the producer's timestamps.",
              _one_of("CreateTime", refused={
                  "LogAppendTime": "LogAppendTime is not supported: batches are stored as the producer sent them",
              })),
    ConfigKey("min.insync.replicas", "1", "INT",
              "Every acknowledged batch is in the object store, which does its own replication.",
              _one_of("1")),
    ConfigKey("compression.type", "producer", "STRING",
              "Batches keep the producer's compression.",
              _one_of("producer")),
    ConfigKey("min.cleanable.dirty.ratio", "0.5", "DOUBLE", "Unused: no compaction.", _ratio),
]

TOPIC_CONFIGS = {key.name: key for key in _KEYS}


def validate(configs):
    """Check names and values; raise InvalidConfig naming the bad one."""
    for name, value in configs.items():
        key = TOPIC_CONFIGS.get(name)
        if key is None:
            raise InvalidConfig(f"unknown topic config {name!r}")
        if value is None:
            raise InvalidConfig(f"{name}: a value is required")
        try:
            key.check(value)
        except InvalidConfig as e:
            raise InvalidConfig(f"{name}: {e}") from None


def effective(configs, name):
    """The value in force for ``name``: set on the topic, else the default."""
    return configs.get(name, TOPIC_CONFIGS[name].default)


def effective_int(configs, name):
    return int(effective(configs, name))
