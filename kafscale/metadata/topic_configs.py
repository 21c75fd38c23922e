"""Topic configs: every config Kafka 4 defines for a topic, its default and
its validation, as Kafka has them; the store keeps only what was set
explicitly.

Each config is one of three kinds. Those Kafscale honours change what
clients see (retention, sizes, ``message.timestamp.type``,
``compression.type``, ...). Those with no meaning on an object store
(``flush.ms``, ``preallocate``, the replication throttles, ...) are no-ops:
accepted, validated, stored and described like any other, so that configs
copied from a Kafka cluster apply. What cannot be honoured would be refused
with a message that says why (nothing is, today).
A few configs Kafka 4 removed (``message.format.version``, ...) are still
accepted as no-ops from older clusters' settings, and described only where
set.

Each topic config names its Kafka broker-wide synonym (``retention.ms`` has
``log.retention.ms``), which DescribeConfigs reports. The broker's own
settings are described here too, under Kafka's names: twistd options, but
for the few that change at runtime (DYNAMIC_BROKER_CONFIGS).
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
    broker_name: str | None
    """The broker-wide config that supplies the default, as Kafka names it
    (None where Kafka has none)."""
    legacy: bool = False
    """Removed in Kafka 4: accepted from older clusters' configs, described
    only where set."""


LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


def _whole(minimum=-(2**63), maximum=LONG_MAX):
    def check(value):
        try:
            number = int(value.strip())
        except ValueError:
            raise InvalidConfig(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise InvalidConfig(f"{number} is below the minimum {minimum}")
        if number > maximum:
            raise InvalidConfig(f"{number} is above the maximum {maximum}")
    return check


def int_range(minimum=-(2**31), maximum=INT_MAX):
    return _whole(minimum, maximum)


def _level(minimum, maximum, also=None):
    """A compression level: ``minimum``..``maximum``, or ``also``."""
    in_range = int_range(minimum, maximum)

    def check(value):
        if also is not None and value.strip() == str(also):
            return
        in_range(value)
    return check


def _boolean(value):
    if value.strip().lower() not in ("true", "false"):
        raise InvalidConfig(f"{value!r} is not true or false")


def one_of(*accepted):
    def check(value):
        if value.strip() not in accepted:
            raise InvalidConfig(f"{value!r} is not one of {', '.join(accepted)}")
    return check


def _ratio(value):
    try:
        number = float(value)
    except ValueError:
        raise InvalidConfig(f"{value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise InvalidConfig(f"{number} is outside 0..1")


def list_items(value):
    """The items of a LIST config's value, as Kafka splits them."""
    return [item.strip() for item in value.split(",") if item.strip()]


CLEANUP_POLICIES = ("compact", "delete")


def _cleanup_policy(value):
    policies = [policy.strip() for policy in value.split(",")]
    unknown = [policy for policy in policies if policy not in CLEANUP_POLICIES]
    if unknown or len(set(policies)) != len(policies):
        raise InvalidConfig(f"{value!r} is not a list of distinct cleanup policies out of compact and delete")


_THROTTLED_REPLICA = re.compile(r"\d+:\d+")


def _throttled_replicas(value):
    items = list_items(value)
    if items == ["*"]:
        return
    bad = [item for item in items if not _THROTTLED_REPLICA.fullmatch(item)]
    if bad:
        raise InvalidConfig(f"{bad[0]!r} is not [PartitionId]:[BrokerId] (or the list is not '*')")


_VERSION = re.compile(r"\d+\.\d+(\.\d+)?(-IV\d+)?")


def _message_format_version(value):
    if not _VERSION.fullmatch(value.strip()):
        raise InvalidConfig(f"{value!r} is not a Kafka version such as 3.0-IV1")


COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

_NO_DISK = "No-op: records are written to the object store, not to a local disk."
_NO_FOLLOWERS = "No-op: the object store replicates; brokers do not copy partitions between them."
_NO_TIERING = "No-op: every segment already lives in the object store; there is no local tier."

_KEYS = [
    ConfigKey("retention.ms", "604800000", "LONG",
              "How long a segment is kept after its newest record; -1 keeps it forever.", _whole(-1),
              "log.retention.ms"),
    ConfigKey("retention.bytes", "-1", "LONG",
              "Size a partition keeps: its oldest segments are dropped while the rest is at least this"
              " large; -1 for no limit.", _whole(), "log.retention.bytes"),
    ConfigKey("max.message.bytes", "1048588", "INT",
              "Largest record batch accepted by produce.", int_range(0), "message.max.bytes"),
    # Kafka 4 asks for at least 1 MiB; smaller segments are accepted here
    # since they only make merging write more, smaller objects.
    ConfigKey("segment.bytes", "8388608", "INT",
              "Largest segment a flush writes, and the size background merging builds segments up to.",
              int_range(1024), "log.segment.bytes"),
    ConfigKey("segment.ms", "604800000", "LONG",
              "Kafka's segment roll time: every flush already writes a new immutable segment; on a compacted"
              " topic the newest segment is compacted only once its newest record is this old.", _whole(1),
              "log.roll.ms"),
    ConfigKey("segment.jitter.ms", "0", "LONG", "No-op: segments are not rolled by time.", _whole(0),
              "log.roll.jitter.ms"),
    ConfigKey("segment.index.bytes", "10485760", "INT",
              "No-op: a segment's index is as large as its batches need.", int_range(4), "log.index.size.max.bytes"),
    ConfigKey("index.interval.bytes", "4096", "INT",
              "No-op: segments index every batch boundary.", int_range(0), "log.index.interval.bytes"),
    ConfigKey("flush.messages", str(LONG_MAX), "LONG",
              "No-op: a batch is acknowledged once it is in the object store, which is durable.", _whole(1),
              "log.flush.interval.messages"),
    ConfigKey("flush.ms", str(LONG_MAX), "LONG",
              "No-op: a batch is acknowledged once it is in the object store, which is durable.", _whole(0),
              "log.flush.interval.ms"),
    ConfigKey("file.delete.delay.ms", "60000", "LONG",
              "No-op: replaced objects are deleted after the broker's merge delete delay.", _whole(0),
              "log.segment.delete.delay.ms"),
    ConfigKey("preallocate", "false", "BOOLEAN", _NO_DISK, _boolean, "log.preallocate"),
    ConfigKey("cleanup.policy", "delete", "LIST",
              "delete: old segments are dropped by retention; compact: only the latest record of each key is"
              " kept; compact,delete: both.", _cleanup_policy, "log.cleanup.policy"),
    ConfigKey("delete.retention.ms", "86400000", "LONG",
              "How long a tombstone (a null value) stays after the compaction that first kept it.", _whole(0),
              "log.cleaner.delete.retention.ms"),
    ConfigKey("min.compaction.lag.ms", "0", "LONG",
              "A record stays uncompacted at least this long (by its segment's newest timestamp).", _whole(0),
              "log.cleaner.min.compaction.lag.ms"),
    ConfigKey("max.compaction.lag.ms", str(LONG_MAX), "LONG",
              "A dirty segment is compacted once its newest record is this old, whatever the dirty ratio.",
              _whole(1), "log.cleaner.max.compaction.lag.ms"),
    ConfigKey("min.cleanable.dirty.ratio", "0.5", "DOUBLE",
              "A compacted partition is compacted once its dirty (not yet compacted) bytes are this share of"
              " its cleanable bytes.", _ratio, "log.cleaner.min.cleanable.ratio"),
    ConfigKey("message.timestamp.type", "CreateTime", "STRING",
              "CreateTime keeps the producer's timestamps; LogAppendTime has the broker stamp each batch with"
              " the time it appends it.", one_of("CreateTime", "LogAppendTime"), "log.message.timestamp.type"),
    ConfigKey("message.timestamp.before.max.ms", str(LONG_MAX), "LONG",
              "With CreateTime, a batch whose timestamps are further in the past than this is refused"
              " with INVALID_TIMESTAMP.", _whole(0), "log.message.timestamp.before.max.ms"),
    ConfigKey("message.timestamp.after.max.ms", str(LONG_MAX), "LONG",
              "With CreateTime, a batch whose timestamps are further in the future than this is refused"
              " with INVALID_TIMESTAMP.", _whole(0), "log.message.timestamp.after.max.ms"),
    ConfigKey("compression.type", "producer", "STRING",
              "producer keeps each batch as the producer compressed it; any other codec (or uncompressed)"
              " has the broker recompress batches that arrive otherwise.", one_of(*COMPRESSION_TYPES),
              "compression.type"),
    ConfigKey("compression.gzip.level", "-1", "INT", "The gzip level of batches the broker recompresses.",
              _level(1, 9, also=-1), "compression.gzip.level"),
    ConfigKey("compression.lz4.level", "9", "INT", "The lz4 level of batches the broker recompresses.",
              _level(1, 17), "compression.lz4.level"),
    ConfigKey("compression.zstd.level", "3", "INT", "The zstd level of batches the broker recompresses.",
              _level(-131072, 22), "compression.zstd.level"),
    ConfigKey("min.insync.replicas", "1", "INT",
              "Satisfied whatever its value: an acknowledged batch is in the object store, which replicates"
              " it; acks=all means the same as acks=1.", int_range(1), "min.insync.replicas"),
    ConfigKey("unclean.leader.election.enable", "false", "BOOLEAN",
              "No-op: a partition's new owner reads the committed log from the object store, so no election"
              " can lose records.", _boolean, "unclean.leader.election.enable"),
    ConfigKey("leader.replication.throttled.replicas", "", "LIST", _NO_FOLLOWERS, _throttled_replicas, None),
    ConfigKey("follower.replication.throttled.replicas", "", "LIST", _NO_FOLLOWERS, _throttled_replicas, None),
    ConfigKey("remote.storage.enable", "false", "BOOLEAN", _NO_TIERING, _boolean, None),
    ConfigKey("local.retention.ms", "-2", "LONG", _NO_TIERING, _whole(-2), "log.local.retention.ms"),
    ConfigKey("local.retention.bytes", "-2", "LONG", _NO_TIERING, _whole(-2), "log.local.retention.bytes"),
    ConfigKey("remote.log.copy.disable", "false", "BOOLEAN", _NO_TIERING, _boolean, None),
    ConfigKey("remote.log.delete.on.disable", "false", "BOOLEAN", _NO_TIERING, _boolean, None),
    ConfigKey("message.format.version", "3.0-IV1", "STRING",
              "No-op (removed in Kafka 4): batches are always record batch v2.", _message_format_version,
              "log.message.format.version", legacy=True),
    ConfigKey("message.downconversion.enable", "true", "BOOLEAN",
              "No-op (removed in Kafka 4): fetches below v4 are not spoken, so nothing is down-converted.",
              _boolean, "log.message.downconversion.enable", legacy=True),
    ConfigKey("message.timestamp.difference.max.ms", str(LONG_MAX), "LONG",
              "No-op (removed in Kafka 4): use message.timestamp.before.max.ms and after.max.ms.", _whole(0),
              "log.message.timestamp.difference.max.ms", legacy=True),
]

TOPIC_CONFIGS = {key.name: key for key in _KEYS}


def with_changes(configs, updates, deletions):
    """-> a new {name: value}: ``configs`` without ``deletions``, with
    ``updates`` set (as an alter of topic, group or broker configs leaves
    them)."""
    changed = {name: value for name, value in configs.items() if name not in deletions}
    changed.update(updates)
    return changed


def check_each(configs, keys, kind):
    """Check each name of ``configs`` against ``keys`` ({name: ConfigKey})
    and each value against its key; raise InvalidConfig naming the bad one
    (``kind``: whose configs they are, "topic", "group", ...)."""
    for name, value in configs.items():
        key = keys.get(name)
        if key is None:
            raise InvalidConfig(f"unknown {kind} config {name!r}")
        if value is None:
            raise InvalidConfig(f"{name}: a value is required")
        try:
            key.check(value)
        except InvalidConfig as e:
            raise InvalidConfig(f"{name}: {e}") from None


def validate(configs):
    """Check names and values; raise InvalidConfig naming the bad one."""
    check_each(configs, TOPIC_CONFIGS, "topic")
    if effective_int(configs, "min.compaction.lag.ms") > effective_int(configs, "max.compaction.lag.ms"):
        raise InvalidConfig("min.compaction.lag.ms: above max.compaction.lag.ms")


_SERVED_DEFAULTS = ("retention.ms", "retention.bytes", "max.message.bytes", "message.timestamp.type",
                    "message.timestamp.before.max.ms", "message.timestamp.after.max.ms", "compression.type",
                    "compression.gzip.level", "compression.lz4.level", "compression.zstd.level")

DYNAMIC_BROKER_CONFIGS = {TOPIC_CONFIGS[name].broker_name: TOPIC_CONFIGS[name] for name in _SERVED_DEFAULTS}
"""The broker configs that change at runtime (AlterConfigs on a broker
resource), by broker name, each with the topic config it is the default of
and whose validation it takes: those a broker reads from its topics'
configs as it serves (retention passes and produce requests), so a new
default holds from the next one. Kafka lets more change; the others here
are read when a partition opens, or by compaction, or are twistd options."""


def cleanup_policies(configs):
    """The cleanup policies in force: a frozenset of "compact" and "delete"."""
    return frozenset(policy.strip() for policy in effective(configs, "cleanup.policy").split(","))


def described(configs):
    """The ConfigKeys a topic with ``configs`` set describes: all of Kafka
    4's, and the legacy ones it has set."""
    return [key for key in _KEYS if not key.legacy or key.name in configs]


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
    BrokerSetting("default.replication.factor", "INT",
                  "The replication factor of topics created without one; the object store replicates"
                  " whatever the number says.", _fixed("1")),
    BrokerSetting("offsets.topic.replication.factor", "SHORT",
                  "No-op: committed offsets live in the metadata store, not in a topic.", _fixed("1")),
    BrokerSetting("transaction.state.log.replication.factor", "SHORT",
                  "No-op: there is no transaction state topic.", _fixed("1")),
    BrokerSetting("socket.request.max.bytes", "INT", "Largest request accepted (--max-request-size).",
                  _option("max_request_size")),
    BrokerSetting("max.connections", "INT", "Client connections in all (--max-connections).",
                  _option("max_connections")),
    BrokerSetting("max.connections.per.ip", "INT", "Client connections from one address"
                  " (--max-connections-per-address).", _option("max_connections_per_address")),
    BrokerSetting("fetch.max.bytes", "INT", "The most one fetch answers (--fetch-max-bytes).",
                  _option("fetch_max_bytes")),
    BrokerSetting("log.retention.check.interval.ms", "LONG",
                  "How often retention is enforced (--retention-check-interval-ms).",
                  _option("retention_check_interval_ms")),
    BrokerSetting("log.retention.hours", "INT", "The default retention, in hours (log.retention.ms rules).",
                  _fixed("168")),
    BrokerSetting("group.initial.rebalance.delay.ms", "INT", "How long a new group waits for more members.",
                  _option("group_initial_rebalance_delay_ms")),
    BrokerSetting("group.min.session.timeout.ms", "INT", "The shortest session timeout a member may ask.",
                  _option("group_min_session_timeout_ms")),
    BrokerSetting("group.max.session.timeout.ms", "INT", "The longest session timeout a member may ask.",
                  _option("group_max_session_timeout_ms")),
    BrokerSetting("offset.metadata.max.bytes", "INT", "Largest metadata of a committed offset.",
                  _option("offset_metadata_max_bytes")),
    *(BrokerSetting(key.broker_name, key.type, f"Default of the topic config {key.name}.", _fixed(key.default))
      for key in _KEYS if key.broker_name is not None and not key.legacy),
]}
"""The broker's settings under Kafka's names: twistd options, the dynamic
ones (DYNAMIC_BROKER_CONFIGS) only where no dynamic value overrides them."""
