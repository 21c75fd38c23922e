"""DeleteAcls, v1-3: remove the stored ACL bindings each filter matches,
and name them.

Versions: v1 (the oldest spoken) adds the pattern type filter (KIP-290);
v2 is the first flexible version; v3 is the same.

Authorization: ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED);
SECURITY_DISABLED without ``--authorizer acl``. A filter that cannot match
(UNKNOWN in a field) answers INVALID_REQUEST; the other filters still
apply.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import AclFilter, InvalidAcl, Operation


async def handle(request):
    filters = request.body["filters"]
    results = [{"error_code": ErrorCode.NONE, "error_message": None, "matching_acls": []} for _ in filters]
    refusal = authorization.acl_refusal(request, Operation.ALTER)
    valid = []
    for wanted, result in zip(filters, results):
        if refusal is not None:
            result["error_code"], result["error_message"] = refusal.code, refusal.message
            continue
        try:
            valid.append((AclFilter.of(
                wanted["resource_type_filter"], wanted["resource_name_filter"], wanted["pattern_type_filter"],
                wanted["principal_filter"], wanted["host_filter"], wanted["operation"], wanted["permission_type"]),
                result))
        except InvalidAcl as e:
            result["error_code"], result["error_message"] = ErrorCode.INVALID_REQUEST, str(e)
    if valid:
        try:
            removed = await request.acl_store.delete_acls([acl_filter for acl_filter, _ in valid])
        except REFUSALS as e:
            e = kafka_error(e)
            for _, result in valid:
                result["error_code"], result["error_message"] = e.code, e.message
        else:
            for (_, result), bindings in zip(valid, removed):
                result["matching_acls"] = [
                    {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": b.resource_type,
                     "resource_name": b.resource_name, "pattern_type": b.pattern_type, "principal": b.principal,
                     "host": b.host, "operation": b.operation, "permission_type": b.permission}
                    for b in sorted(bindings)
                ]
    return {"throttle_time_ms": 0, "filter_results": results}
