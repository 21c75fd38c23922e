"""Topic configs: the Kafka-named settings Kafscale knows, their defaults,
and validation. The store keeps only what was set explicitly.

Each topic config names its Kafka broker-wide synonym (``retention.ms`` has
``log.retention.ms``), which DescribeConfigs reports. The broker's own
settings are described here too, under Kafka's names where Kafka has one:
they are static (twistd options), so they are listed but never altered
through the protocol.
"""

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
    broker_name: str
    """The broker-wide config that supplies the default, as Kafka names it."""


LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


def _whole(minimum, maximum=LONG_MAX):
    def check(value):
        try:
            number = int(value)
        except ValueError:
            raise InvalidConfig(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise InvalidConfig(f"{number} is below the minimum {minimum}")
        if number > maximum:
            raise InvalidConfig(f"{number} is above the maximum {maximum}")
    return check


def _only(accepted, why):
    """A setting Kafscale supports with one value only; ``why`` says why."""
    def check(value):
        if value != accepted:
            raise InvalidConfig(f"only {accepted} is supported: {why}")
    return check


def _ratio(value):
    try:
        number = float(value)
    except ValueError:
        raise InvalidConfig(f"{value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise InvalidConfig(f"{number} is outside 0..1")


CLEANUP_POLICIES = ("compact", "delete")


def _cleanup_policy(value):
    policies = [policy.strip() for policy in value.split(",")]
    unknown = [policy for policy in policies if policy not in CLEANUP_POLICIES]
    if unknown or len(set(policies)) != len(policies):
        raise InvalidConfig(f"{value!r} is not a list of distinct cleanup policies out of compact and delete")


_KEYS = [
    ConfigKey("retention.ms", "604800000", "LONG",
              "How long a segment is kept after its newest record; -1 keeps it forever.", _whole(-1),
              "log.retention.ms"),
    ConfigKey("retention.bytes", "-1", "LONG",
              "Size a partition keeps: its oldest segments are dropped while the rest is at least this"
              " large; -1 for no limit.", _whole(-1), "log.retention.bytes"),
    ConfigKey("max.message.bytes", "1048588", "INT",
              "Largest record batch accepted by produce.", _whole(0, INT_MAX), "message.max.bytes"),
    ConfigKey("segment.bytes", "8388608", "INT",
              "Largest segment a flush writes, and the size background merging builds segments up to.",
              _whole(1024, INT_MAX), "log.segment.bytes"),
    ConfigKey("segment.ms", "604800000", "LONG",
              "Kafka's segment roll time: every flush already writes a new immutable segment; on a compacted"
              " topic the newest segment is compacted only once its newest record is this old.", _whole(1),
              "log.roll.ms"),
    ConfigKey("cleanup.policy", "delete", "LIST",
              "delete: old segments are dropped by retention; compact: only the latest record of each key is"
              " kept; compact,delete: both.", _cleanup_policy, "log.cleanup.policy"),
    ConfigKey("message.timestamp.type", "CreateTime", "STRING",
              "Only CreateTime: the broker never rewrites batches, so it keeps the producer's timestamps.",
              _only("CreateTime", "batches are stored as the producer sent them, with its timestamps"),
              "log.message.timestamp.type"),
    ConfigKey("min.insync.replicas", "1", "INT",
              "Every acknowledged batch is in the object store, which does its own replication.",
              _only("1", "an acknowledged batch is in the object store, which replicates it"),
              "min.insync.replicas"),
    ConfigKey("compression.type", "producer", "STRING",
              "Batches keep the producer's compression.",
              _only("producer", "the broker never recompresses batches"), "compression.type"),
    ConfigKey("min.cleanable.dirty.ratio", "0.5", "DOUBLE",
              "A compacted partition is compacted once its dirty (not yet compacted) bytes are this share of"
              " its cleanable bytes.", _ratio, "log.cleaner.min.cleanable.ratio"),
    ConfigKey("min.compaction.lag.ms", "0", "LONG",
              "A record stays uncompacted at least this long (by its segment's newest timestamp).", _whole(0),
              "log.cleaner.min.compaction.lag.ms"),
    ConfigKey("max.compaction.lag.ms", str(LONG_MAX), "LONG",
              "A dirty segment is compacted once its newest record is this old, whatever the dirty ratio.",
              _whole(1), "log.cleaner.max.compaction.lag.ms"),
    ConfigKey("delete.retention.ms", "86400000", "LONG",
              "How long a tombstone (a null value) stays after the compaction that first kept it.", _whole(0),
              "log.cleaner.delete.retention.ms"),
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
    if effective_int(configs, "min.compaction.lag.ms") > effective_int(configs, "max.compaction.lag.ms"):
        raise InvalidConfig("min.compaction.lag.ms: above max.compaction.lag.ms")


def cleanup_policies(configs):
    """The cleanup policies in force: a frozenset of "compact" and "delete"."""
    return frozenset(policy.strip() for policy in effective(configs, "cleanup.policy").split(","))


def effective(configs, name):
    """The value in force for ``name``: set on the topic, else the default."""
    return configs.get(name, TOPIC_CONFIGS[name].default)


def effective_int(configs, name):
    return int(effective(configs, name))


@dataclass(frozen=True, slots=True)
class BrokerSetting:
    """One of the broker's own settings, as DescribeConfigs lists it."""

    name: str
    type: str
    doc: str
    value: Callable[[object], str | None]
    """Reads the value from a BrokerConfig."""


def _option(attribute):
    def value(config):
        setting = getattr(config, attribute)
        if setting is None:
            return None
        if isinstance(setting, bool):
            return "true" if setting else "false"
        return str(setting)
    return value


def _fixed(text):
    return lambda config: text


BROKER_SETTINGS = {setting.name: setting for setting in [
    BrokerSetting("broker.id", "INT", "This broker's node id (--node-id).", _option("node_id")),
    BrokerSetting("node.id", "INT", "This broker's node id (--node-id).", _option("node_id")),
    BrokerSetting("broker.rack", "STRING", "Rack reported in Metadata (--rack).", _option("rack")),
    BrokerSetting("advertised.listeners", "STRING", "Where clients connect (--advertised-listeners).",
                  lambda config: ",".join(str(listener) for listener in config.advertised_listeners)),
    BrokerSetting("auto.create.topics.enable", "BOOLEAN",
                  "Create unknown topics on Metadata and Produce (--auto-create-topics).",
                  _option("auto_create_topics")),
    BrokerSetting("num.partitions", "INT", "Partitions of auto-created topics (--num-partitions).",
                  _option("num_partitions")),
    BrokerSetting("default.replication.factor", "SHORT",
                  "Always 1: the object store replicates.", _fixed("1")),
    BrokerSetting("socket.request.max.bytes", "INT", "Largest request accepted (--max-request-size).",
                  _option("max_request_size")),
    BrokerSetting("log.retention.check.interval.ms", "LONG",
                  "How often retention is enforced (--retention-check-interval-ms).",
                  _option("retention_check_interval_ms")),
    *(BrokerSetting(key.broker_name, key.type, f"Default of the topic config {key.name}.", _fixed(key.default))
      for key in _KEYS),
]}
"""The broker's settings under Kafka's names; all static (twistd options)."""
