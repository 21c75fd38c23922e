"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

Topic configs live in the metadata store and change atomically, one write
per topic. The broker's own settings are static (twistd options): they are
described under Kafka's names and refused when a client tries to alter them.
"""

import dataclasses
import enum
from collections import Counter

from kafscale.config import BrokerConfig
from kafscale.handlers import handles, named_more_than_once
from kafscale.metadata import topic_configs
from kafscale.metadata.topic_configs import BROKER_SETTINGS, TOPIC_CONFIGS, InvalidConfig
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey


class ResourceType(enum.IntEnum):
    TOPIC = 2
    BROKER = 4


class ConfigSource(enum.IntEnum):
    DYNAMIC_TOPIC_CONFIG = 1
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ConfigOperation(enum.IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


CONFIG_TYPES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "SHORT": 4, "LONG": 5, "DOUBLE": 6, "LIST": 7}

_DEFAULT_BROKER = BrokerConfig()


# -- DescribeConfigs ---------------------------------------------------------


@handles(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(request):
    body = request.body
    results = []
    for resource in body["resources"]:
        result = {"error_code": ErrorCode.NONE, "error_message": None,
                  "resource_type": resource["resource_type"], "resource_name": resource["resource_name"],
                  "configs": []}
        results.append(result)
        try:
            entries = _entries(request.broker, resource["resource_type"], resource["resource_name"])
        except KafkaError as e:
            result["error_code"], result["error_message"] = e.code, e.message
            continue
        wanted = resource["configuration_keys"]
        result["configs"] = [
            _describe(entry, body.get("include_synonyms", False), body.get("include_documentation", False))
            for entry in entries
            if wanted is None or entry["name"] in wanted
        ]
    return {"throttle_time_ms": 0, "results": results}


def _entries(broker, resource_type, name):
    if resource_type == ResourceType.TOPIC:
        info = broker.topics.get(name)
        if info is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {name!r}")
        return [_topic_entry(key, info.configs) for key in TOPIC_CONFIGS.values()]
    if resource_type == ResourceType.BROKER:
        if name == "":
            # The cluster-wide dynamic defaults: there are none.
            return []
        _check_broker(broker, name)
        # In a cluster the node id may have been allocated at start.
        config = dataclasses.replace(broker.config, node_id=broker.node_id)
        return [_broker_entry(setting, config) for setting in BROKER_SETTINGS.values()]
    raise KafkaError(ErrorCode.INVALID_REQUEST, f"resource type {resource_type} is not supported")


def _topic_entry(key, configs):
    default = (key.broker_name, key.default, ConfigSource.DEFAULT_CONFIG)
    if key.name in configs:
        value, source = configs[key.name], ConfigSource.DYNAMIC_TOPIC_CONFIG
        synonyms = [(key.name, value, source), default]
    else:
        value, source = key.default, ConfigSource.DEFAULT_CONFIG
        synonyms = [default]
    return {"name": key.name, "value": value, "source": source, "read_only": False, "type": key.type,
            "doc": key.doc, "synonyms": synonyms}


def _broker_entry(setting, config):
    value = setting.value(config)
    source = (ConfigSource.DEFAULT_CONFIG if value == setting.value(_DEFAULT_BROKER)
              else ConfigSource.STATIC_BROKER_CONFIG)
    return {"name": setting.name, "value": value, "source": source, "read_only": True, "type": setting.type,
            "doc": setting.doc, "synonyms": [(setting.name, value, source)]}


def _describe(entry, include_synonyms, include_documentation):
    return {
        "name": entry["name"],
        "value": entry["value"],
        "read_only": entry["read_only"],
        "config_source": entry["source"],
        "is_sensitive": False,
        "synonyms": [{"name": name, "value": value, "source": source}
                     for name, value, source in entry["synonyms"]] if include_synonyms else [],
        "config_type": CONFIG_TYPES[entry["type"]],
        "documentation": entry["doc"] if include_documentation else None,
    }


def _check_broker(broker, name):
    try:
        node_id = int(name)
    except ValueError:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"broker resource {name!r} is not a node id") from None
    if node_id != broker.node_id:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"this is broker {broker.node_id}: ask broker {node_id} about its own configs")


# -- AlterConfigs and IncrementalAlterConfigs --------------------------------


@handles(ApiKey.ALTER_CONFIGS)
async def alter_configs(request):
    return await _alter(request, _replacing_changes)


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(request):
    return await _alter(request, _incremental_changes)


def _replacing_changes(info, configs):
    """AlterConfigs replaces a topic's configs: those not named return to
    their defaults."""
    updates = {config["name"]: config["value"] for config in configs}
    return updates, [name for name in TOPIC_CONFIGS if name not in updates]


def _incremental_changes(info, configs):
    updates = {}
    deletions = []
    for config in configs:
        name, value, operation = config["name"], config["value"], config["config_operation"]
        key = TOPIC_CONFIGS.get(name)
        if key is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown topic config {name!r}")
        if operation == ConfigOperation.SET:
            updates[name] = value
        elif operation == ConfigOperation.DELETE:
            deletions.append(name)
        elif operation in (ConfigOperation.APPEND, ConfigOperation.SUBTRACT):
            if key.type != "LIST":
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"{name} is not a list: APPEND and SUBTRACT apply to lists only")
            current = [item for item in topic_configs.effective(info.configs, name).split(",") if item]
            given = [item.strip() for item in (value or "").split(",") if item.strip()]
            if operation == ConfigOperation.APPEND:
                items = current + [item for item in given if item not in current]
            else:
                items = [item for item in current if item not in given]
            updates[name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown config operation {operation}")
    return updates, deletions


async def _alter(request, changes):
    """Validate and apply each resource's changes; ``changes(info, configs)``
    turns a topic's requested configs into (updates, deletions)."""
    broker = request.broker
    body = request.body
    resources = Counter((r["resource_type"], r["resource_name"]) for r in body["resources"])
    responses = []
    for resource in body["resources"]:
        resource_type, name = resource["resource_type"], resource["resource_name"]
        response = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": resource_type,
                    "resource_name": name}
        responses.append(response)
        try:
            if resources[resource_type, name] > 1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"resource {name!r} is named more than once")
            repeated = named_more_than_once(c["name"] for c in resource["configs"])
            if repeated:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"config {repeated[0]!r} is named more than once")
            if resource_type == ResourceType.BROKER:
                _refuse_broker_change(broker, name, resource["configs"])
            elif resource_type != ResourceType.TOPIC:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"resource type {resource_type} is not supported")
            info = broker.topics.get(name)
            if info is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {name!r}")
            updates, deletions = changes(info, resource["configs"])
            try:
                topic_configs.validate(updates)
            except InvalidConfig as e:
                raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
            if body["validate_only"]:
                continue
            await broker.alter_topic_configs(name, updates, deletions)
        except KafkaError as e:
            response["error_code"], response["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "responses": responses}


def _refuse_broker_change(broker, name, configs):
    if name != "":
        _check_broker(broker, name)
    for config in configs:
        if config["name"] not in BROKER_SETTINGS:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown broker config {config['name']!r}")
    raise KafkaError(ErrorCode.INVALID_REQUEST,
                     "broker configs are static: restart the broker with other options to change them")
