"""DescribeAcls, v1-3: the stored ACL bindings a filter matches, grouped by
resource pattern.

Versions: v1 (the oldest spoken) adds the pattern type filter (ANY, MATCH,
LITERAL or PREFIXED); v2 is the first flexible version; v3 is the same.

Authorization: DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED);
SECURITY_DISABLED without ``--authorizer acl``. A filter that cannot match
(UNKNOWN in a field) answers INVALID_REQUEST.

Departures from Kafka: none that a client sees. The bindings are read from
the metadata store, so an ACL created through any broker is described at
once.
"""

from itertools import groupby

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import AclFilter, InvalidAcl, Operation


async def handle(request):
    body = request.body
    refusal = authorization.acl_refusal(request, Operation.DESCRIBE)
    if refusal is not None:
        return _answer(refusal.code, refusal.message)
    try:
        acl_filter = AclFilter.of(body["resource_type_filter"], body["resource_name_filter"],
                                  body["pattern_type_filter"], body["principal_filter"], body["host_filter"],
                                  body["operation"], body["permission_type"])
    except InvalidAcl as e:
        return _answer(ErrorCode.INVALID_REQUEST, str(e))
    try:
        bindings = sorted(b for b in await request.acl_store.acls() if acl_filter.matches(b))
    except REFUSALS as e:
        e = kafka_error(e)
        return _answer(e.code, e.message)

    def pattern(binding):
        return binding.resource_type, binding.resource_name, binding.pattern_type

    resources = [
        {"resource_type": resource_type, "resource_name": name, "pattern_type": pattern_type,
         "acls": [{"principal": b.principal, "host": b.host, "operation": b.operation,
                   "permission_type": b.permission} for b in matching]}
        for (resource_type, name, pattern_type), matching in groupby(bindings, key=pattern)
    ]
    return _answer(ErrorCode.NONE, None, resources)


def _answer(error, message, resources=()):
    return {"throttle_time_ms": 0, "error_code": error, "error_message": message, "resources": list(resources)}
