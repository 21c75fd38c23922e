"""DescribeClientQuotas, v0-1: the client quotas whose entities match the
request's components.

A component names an entity type (user or client-id) and matches an exact
name (match type 0), the type's default entity (1) or any name but the
default (2); an entity matches when it has every component's type and
matches it, and, with ``strict``, has no other type. Versions: v1 is the
first flexible version.

Authorization: DESCRIBE_CONFIGS on the cluster (else
CLUSTER_AUTHORIZATION_FAILED).

Departures from Kafka: "ip" entities are not supported: a component naming
them answers INVALID_REQUEST.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.security.quotas import ENTITY_TYPES

EXACT, DEFAULT, SPECIFIED = 0, 1, 2


async def handle(request):
    body = request.body
    if not authorization.allowed(request, Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER):
        refusal = authorization.refusal(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER)
        return _answer(refusal.code, refusal.message)
    components = body["components"]
    for component in components:
        if component["entity_type"] not in ENTITY_TYPES:
            return _answer(ErrorCode.INVALID_REQUEST, f"entity type {component['entity_type']!r} is not supported")
        if component["match_type"] not in (EXACT, DEFAULT, SPECIFIED):
            return _answer(ErrorCode.INVALID_REQUEST, f"unknown match type {component['match_type']}")
    try:
        quotas = await request.quota_store.client_quotas()
    except REFUSALS as e:
        e = kafka_error(e)
        return _answer(e.code, e.message)
    entries = [
        {"entity": [{"entity_type": kind, "entity_name": name} for kind, name in entity],
         "values": [{"key": key, "value": value} for key, value in sorted(values.items())]}
        for entity, values in sorted(quotas.items(), key=lambda item: repr(item[0]))
        if _matches(dict(entity), components, body["strict"])
    ]
    return _answer(ErrorCode.NONE, None, entries)


def _matches(entity, components, strict):
    if strict and len(entity) != len(components):
        return False
    for component in components:
        kind = component["entity_type"]
        if kind not in entity:
            return False
        name = entity[kind]
        match_type = component["match_type"]
        if match_type == EXACT and name != component["match"]:
            return False
        if match_type == DEFAULT and name is not None:
            return False
        if match_type == SPECIFIED and name is None:
            return False
    return True


def _answer(error, message, entries=()):
    return {"throttle_time_ms": 0, "error_code": error, "error_message": message, "entries": list(entries)}
