"""DescribeConfigs, v1-4: a topic's or a group's configs (those set on it,
and the defaults of the rest), or this broker's settings under Kafka's
names.

Versions: v1 (the oldest spoken) adds synonyms and the config source; v3
adds the config type and documentation; v4 is the first flexible version.

Departures from Kafka: only topic, group and broker resources are known
(others: INVALID_REQUEST). A broker describes only itself, named by its node id
(asked about another node: INVALID_REQUEST), or the dynamic defaults of
every broker (resource name ""); its settings other than the dynamic ones
are twistd options, read-only. Nothing is sensitive.
"""

import dataclasses

from kafscale.config import BrokerConfig
from kafscale.broker_configs import ALL_BROKERS
from kafscale.handlers.common import known_topic
from kafscale.handlers.config_resources import (
    ConfigSource,
    ResourceType,
    check_access,
    check_this_broker,
    unsupported_resource,
)
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.metadata import topic_configs
from kafscale.metadata.group_configs import GROUP_CONFIGS
from kafscale.metadata.topic_configs import BROKER_SETTINGS, DYNAMIC_BROKER_CONFIGS
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation

CONFIG_TYPES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "SHORT": 4, "LONG": 5, "DOUBLE": 6, "LIST": 7}

_DEFAULT_BROKER = BrokerConfig()


async def handle(request):
    body = request.body
    results = []
    for resource in body["resources"]:
        result = {"error_code": ErrorCode.NONE, "error_message": None,
                  "resource_type": resource["resource_type"], "resource_name": resource["resource_name"],
                  "configs": []}
        results.append(result)
        try:
            check_access(request, Operation.DESCRIBE_CONFIGS, resource["resource_type"], resource["resource_name"])
            entries = await _entries(request, resource["resource_type"], resource["resource_name"])
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"], result["error_message"] = e.code, e.message
            continue
        wanted = resource["configuration_keys"]
        result["configs"] = [
            _describe(entry, body.get("include_synonyms", False), body.get("include_documentation", False))
            for entry in entries
            if wanted is None or entry["name"] in wanted
        ]
    return {"throttle_time_ms": 0, "results": results}


async def _entries(request, resource_type, name):
    if resource_type == ResourceType.TOPIC:
        info = known_topic(request.topics, name)
        dynamic = _dynamic(request)
        return [_set_or_default(key, info.configs, ConfigSource.DYNAMIC_TOPIC_CONFIG, dynamic)
                for key in topic_configs.described(info.configs)]
    if resource_type == ResourceType.GROUP:
        configs = await request.groups.configs(name)
        return [_set_or_default(key, configs, ConfigSource.GROUP_CONFIG) for key in GROUP_CONFIGS.values()]
    if resource_type == ResourceType.BROKER:
        if name == ALL_BROKERS:
            return [_dynamic_default_entry(config, value)
                    for config, value in request.broker_configs.of(ALL_BROKERS).items() if config in BROKER_SETTINGS]
        check_this_broker(request.view.node_id, name)
        # In a cluster the node id may have been allocated at start.
        config = dataclasses.replace(request.config, node_id=request.view.node_id)
        dynamic = _dynamic(request)
        return [_broker_entry(setting, config, dynamic) for setting in BROKER_SETTINGS.values()]
    raise unsupported_resource(resource_type)


def _dynamic(request):
    """-> {broker config name: [(value, source)]} of the dynamic broker
    configs that hold on this broker, the one in force first."""
    own = str(request.view.node_id)
    found = {}
    for resource, source in ((own, ConfigSource.DYNAMIC_BROKER_CONFIG),
                             (ALL_BROKERS, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)):
        for name, value in request.broker_configs.of(resource).items():
            found.setdefault(name, []).append((value, source))
    return found


def _set_or_default(key, configs, set_source, dynamic=None):
    """The entry of a config that is ``set_source`` where ``configs`` set it,
    else what the broker's ``dynamic`` configs make its default, else the
    default."""
    # A config without a broker-wide synonym has no default synonym either.
    overrides = (dynamic or {}).get(key.broker_name, [])
    defaults = [] if key.broker_name is None else [
        *((key.broker_name, value, source) for value, source in overrides),
        (key.broker_name, key.default, ConfigSource.DEFAULT_CONFIG)]
    if key.name in configs:
        value, source = configs[key.name], set_source
        synonyms = [(key.name, value, source), *defaults]
    else:
        _, value, source = defaults[0] if defaults else (None, key.default, ConfigSource.DEFAULT_CONFIG)
        synonyms = defaults
    return {"name": key.name, "value": value, "source": source, "read_only": False, "type": key.type,
            "doc": key.doc, "synonyms": synonyms}


def _broker_entry(setting, config, dynamic):
    static = setting.value(config)
    static_source = (ConfigSource.DEFAULT_CONFIG if static == setting.value(_DEFAULT_BROKER)
                     else ConfigSource.STATIC_BROKER_CONFIG)
    synonyms = [*((setting.name, value, source) for value, source in dynamic.get(setting.name, [])),
                (setting.name, static, static_source)]
    _, value, source = synonyms[0]
    return {"name": setting.name, "value": value, "source": source,
            "read_only": setting.name not in DYNAMIC_BROKER_CONFIGS, "type": setting.type, "doc": setting.doc,
            "synonyms": synonyms}


def _dynamic_default_entry(name, value):
    """The entry of a dynamic config set for every broker."""
    source = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    return {"name": name, "value": value, "source": source, "read_only": False,
            "type": BROKER_SETTINGS[name].type, "doc": BROKER_SETTINGS[name].doc, "synonyms": [(name, value, source)]}


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
