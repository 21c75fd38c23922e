"""What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share:
the resources they address (topics, groups and this broker), Kafka's codes
for config sources, and the one way both alter APIs validate and apply a
resource's changes.

Topic and group configs live in the metadata store and change atomically,
one write per resource, as do the dynamic broker configs (see
kafscale.broker_configs). The broker's other settings are static (twistd
options): they are described under Kafka's names, and altering them is
refused as Kafka refuses what it cannot update dynamically.
"""

import enum
from collections import Counter

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.handlers.validation import check_named_once, named_more_than_once
from kafscale.metadata.group_configs import GROUP_CONFIGS
from kafscale.metadata.topic_configs import BROKER_SETTINGS, DYNAMIC_BROKER_CONFIGS, TOPIC_CONFIGS
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata import acls
from kafscale.metadata.acls import Operation


class ResourceType(enum.IntEnum):
    TOPIC = 2
    BROKER = 4
    GROUP = 32


class ConfigSource(enum.IntEnum):
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    GROUP_CONFIG = 8


def unsupported_resource(resource_type):
    return KafkaError(ErrorCode.INVALID_REQUEST, f"resource type {resource_type} is not supported")


def check_access(request, operation, resource_type, name):
    """Refuse ``operation`` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a
    resource's configs unless the principal may: a topic's with
    TOPIC_AUTHORIZATION_FAILED, a broker's (the cluster's, to ACLs) with
    CLUSTER_AUTHORIZATION_FAILED, a group's with GROUP_AUTHORIZATION_FAILED."""
    if resource_type == ResourceType.TOPIC:
        authorization.check(request, operation, acls.ResourceType.TOPIC, name)
    elif resource_type == ResourceType.GROUP:
        authorization.check(request, operation, acls.ResourceType.GROUP, name)
    elif resource_type == ResourceType.BROKER:
        authorization.check(request, operation, acls.ResourceType.CLUSTER)


def check_this_broker(node_id, name):
    """A broker resource is named by its node id; each broker answers for
    itself alone."""
    try:
        named = int(name)
    except ValueError:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"broker resource {name!r} is not a node id") from None
    if named != node_id:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"this is broker {node_id}: ask broker {named} about its own configs")


async def alter(request, changes, groups=False):
    """Validate and apply each resource's changes; ``changes(kind, keys,
    current, configs)`` turns the configs requested of a resource of
    ``kind`` ("topic", "group" or "broker", whose configs that may change are ``keys``
    and which has ``current`` set) into (updates, deletions). Group
    resources are refused unless ``groups``."""
    body = request.body
    resources = Counter((r["resource_type"], r["resource_name"]) for r in body["resources"])
    responses = []
    for resource in body["resources"]:
        resource_type, name = resource["resource_type"], resource["resource_name"]
        response = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": resource_type,
                    "resource_name": name}
        responses.append(response)
        try:
            check_access(request, Operation.ALTER_CONFIGS, resource_type, name)
            if resources[resource_type, name] > 1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"resource {name!r} is named more than once")
            repeated = named_more_than_once(c["name"] for c in resource["configs"])
            for config in resource["configs"]:
                check_named_once("config", config["name"], repeated)
            if resource_type == ResourceType.BROKER:
                if name != "":
                    check_this_broker(request.view.node_id, name)
                _check_dynamic(resource["configs"])
                current = request.broker_configs.of(name)
                updates, deletions = changes("broker", DYNAMIC_BROKER_CONFIGS, current, resource["configs"])
                await request.broker_configs.alter(name, updates, deletions, validate_only=body["validate_only"])
            elif resource_type == ResourceType.TOPIC:
                current = request.topics.require(name).configs
                updates, deletions = changes("topic", TOPIC_CONFIGS, current, resource["configs"])
                await request.topics.alter_configs(name, updates, deletions, validate_only=body["validate_only"])
            elif resource_type == ResourceType.GROUP and groups:
                current = await request.groups.configs(name)
                updates, deletions = changes("group", GROUP_CONFIGS, current, resource["configs"])
                await request.groups.alter_configs(name, updates, deletions, validate_only=body["validate_only"])
            else:
                raise unsupported_resource(resource_type)
        except REFUSALS as e:
            e = kafka_error(e)
            response["error_code"], response["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "responses": responses}


def _check_dynamic(configs):
    """Refuse unknown broker configs (INVALID_CONFIG), then those that do not
    change at runtime, as Kafka does (INVALID_REQUEST)."""
    static = []
    for config in configs:
        name = config["name"]
        if name not in BROKER_SETTINGS:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown broker config {name!r}")
        if name not in DYNAMIC_BROKER_CONFIGS:
            static.append(name)
    if static:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Cannot update these configs dynamically: {', '.join(static)} (twistd options: restart"
                         " the broker to change them)")
