"""Group configs: the settings Kafka 4 lets an operator set on one consumer
group (KIP-848) or share group (KIP-932), their defaults and validation, as
Kafka has them. The store keeps only what was set explicitly.

Kafscale's groups are classic groups: neither the new consumer protocol nor
share groups exist here, so these settings are accepted, validated, kept
and described, and change nothing (as they change nothing for a classic
group in Kafka).
"""

from kafscale.metadata.topic_configs import ConfigKey, InvalidConfig, check_each, int_range, one_of

_NO_EFFECT = " No-op here: Kafscale's groups use the classic protocol."

# Each bounded as a Kafka broker bounds it by default (its
# group.*.min/max.* settings).
_KEYS = [
    ConfigKey("consumer.session.timeout.ms", "45000", "INT",
              "Session timeout of a consumer-protocol group's members." + _NO_EFFECT, int_range(45000, 60000),
              "group.consumer.session.timeout.ms"),
    ConfigKey("consumer.heartbeat.interval.ms", "5000", "INT",
              "Heartbeat interval of a consumer-protocol group's members." + _NO_EFFECT, int_range(5000, 15000),
              "group.consumer.heartbeat.interval.ms"),
    ConfigKey("share.session.timeout.ms", "45000", "INT", "Session timeout of a share group's members." + _NO_EFFECT,
              int_range(45000, 60000), "group.share.session.timeout.ms"),
    ConfigKey("share.heartbeat.interval.ms", "5000", "INT",
              "Heartbeat interval of a share group's members." + _NO_EFFECT, int_range(5000, 15000),
              "group.share.heartbeat.interval.ms"),
    ConfigKey("share.record.lock.duration.ms", "30000", "INT",
              "How long a share group's member holds the records it fetched." + _NO_EFFECT, int_range(15000, 60000),
              "group.share.record.lock.duration.ms"),
    ConfigKey("share.auto.offset.reset", "latest", "STRING",
              "Where a share group starts on a partition it has not read." + _NO_EFFECT,
              one_of("latest", "earliest"), None),
]

GROUP_CONFIGS = {key.name: key for key in _KEYS}


def validate(configs):
    """Check the names and values of a group's configs (all it would have
    set, so that a session is checked against its heartbeat); raise
    InvalidConfig naming the bad one."""
    check_each(configs, GROUP_CONFIGS, "group")
    for kind in ("consumer", "share"):
        session = int(effective(configs, f"{kind}.session.timeout.ms"))
        heartbeat = int(effective(configs, f"{kind}.heartbeat.interval.ms"))
        if session <= heartbeat:
            raise InvalidConfig(f"{kind}.session.timeout.ms must be greater than {kind}.heartbeat.interval.ms")


def effective(configs, name):
    return configs.get(name, GROUP_CONFIGS[name].default)
