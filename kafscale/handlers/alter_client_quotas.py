"""AlterClientQuotas, v0-1: set or remove client quotas, kept in the
metadata store, where every broker follows them.

An entity names a user, a client id or both (a null name: the type's
default). Keys: ``producer_byte_rate``, ``consumer_byte_rate`` (bytes per
second) and ``request_rate`` (requests per second). Versions: v1 is the
first flexible version.

Authorization: ALTER_CONFIGS on the cluster (else
CLUSTER_AUTHORIZATION_FAILED).

Departures from Kafka: ``request_percentage`` (a share of request handler
threads) and ``controller_mutation_rate`` are refused with INVALID_REQUEST:
Kafscale measures a request rate instead, and has no controller. "ip"
entities are not supported.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.security.quotas import InvalidQuota, checked_entity, checked_key, checked_value


async def handle(request):
    body = request.body
    results = []
    alterations = []
    refused = not authorization.allowed(request, Operation.ALTER_CONFIGS, ResourceType.CLUSTER)
    seen = set()
    for entry in body["entries"]:
        result = {"error_code": ErrorCode.NONE, "error_message": None, "entity": entry["entity"]}
        results.append(result)
        if refused:
            refusal = authorization.refusal(Operation.ALTER_CONFIGS, ResourceType.CLUSTER)
            result["error_code"], result["error_message"] = refusal.code, refusal.message
            continue
        try:
            entity = checked_entity([(e["entity_type"], e["entity_name"]) for e in entry["entity"]])
            if entity in seen:
                raise InvalidQuota("an entity is named more than once")
            seen.add(entity)
            changes = {}
            for op in entry["ops"]:
                if op["key"] in changes:
                    raise InvalidQuota(f"quota {op['key']!r} is named more than once")
                changes[checked_key(op["key"])] = None if op["remove"] else checked_value(op["key"], op["value"])
        except InvalidQuota as e:
            result["error_code"], result["error_message"] = ErrorCode.INVALID_REQUEST, str(e)
            continue
        alterations.append((entity, changes, result))
    if alterations and not body["validate_only"]:
        try:
            await request.quota_store.alter_client_quotas([(entity, changes) for entity, changes, _ in alterations])
        except REFUSALS as e:
            e = kafka_error(e)
            for _, _, result in alterations:
                result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "entries": results}
