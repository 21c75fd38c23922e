"""AlterConfigs, v0-2: replace a topic's configs, or a broker resource's
dynamic configs, in one metadata-store write per resource; the configs a
request does not name return to their defaults, as in Kafka.

Versions: v1 is the same as v0; v2 is the first flexible version.

Departures from Kafka: fewer broker configs change at runtime (see
kafscale.metadata.topic_configs.DYNAMIC_BROKER_CONFIGS); the others are
refused with INVALID_REQUEST, as Kafka refuses its read-only ones (an
unknown name with INVALID_CONFIG). A config named twice, or a resource
named twice, is INVALID_REQUEST. Group configs change only through
IncrementalAlterConfigs, as in Kafka (INVALID_REQUEST here).
"""

from kafscale.handlers.config_resources import alter


async def handle(request):
    return await alter(request, _replacing_changes)


def _replacing_changes(kind, keys, current, configs):
    updates = {config["name"]: config["value"] for config in configs}
    return updates, [name for name in keys if name not in updates]
