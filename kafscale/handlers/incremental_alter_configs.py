"""IncrementalAlterConfigs, v0-1: set, delete, append to or subtract from
a topic's or a group's configs (KIP-848's group configs, which are no-ops
here: see kafscale.metadata.group_configs), or a broker resource's dynamic
configs, in one metadata-store write per resource.

Versions: v1 is the first flexible version.

Departures from Kafka: fewer broker configs change at runtime (see
kafscale.metadata.topic_configs.DYNAMIC_BROKER_CONFIGS); the others are
refused with INVALID_REQUEST, as Kafka refuses its read-only ones (an
unknown name with INVALID_CONFIG). APPEND and SUBTRACT apply to list
configs only (INVALID_CONFIG otherwise), as in Kafka.
"""

import enum

from kafscale.handlers.config_resources import alter
from kafscale.metadata.topic_configs import list_items
from kafscale.protocol.errors import ErrorCode, KafkaError


class ConfigOperation(enum.IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


async def handle(request):
    return await alter(request, _incremental_changes, groups=True)


def _incremental_changes(kind, keys, current, configs):
    updates = {}
    deletions = []
    for config in configs:
        name, value, operation = config["name"], config["value"], config["config_operation"]
        key = keys.get(name)
        if key is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown {kind} config {name!r}")
        if operation == ConfigOperation.SET:
            updates[name] = value
        elif operation == ConfigOperation.DELETE:
            deletions.append(name)
        elif operation in (ConfigOperation.APPEND, ConfigOperation.SUBTRACT):
            if key.type != "LIST":
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"{name} is not a list: APPEND and SUBTRACT apply to lists only")
            present = list_items(current.get(name, key.default))
            given = list_items(value or "")
            if operation == ConfigOperation.APPEND:
                items = present + [item for item in given if item not in present]
            else:
                items = [item for item in present if item not in given]
            updates[name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown config operation {operation}")
    return updates, deletions
