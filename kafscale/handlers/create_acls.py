"""CreateAcls, v1-3: store ACL bindings in the metadata store, where every
broker's authorizer follows them.

Versions: v1 (the oldest spoken) adds the pattern type, LITERAL or
PREFIXED (KIP-290); v2 is the first flexible version; v3 is the same.

Authorization: ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED).
Without ``--authorizer acl`` every creation answers SECURITY_DISABLED, as
Kafka does without an authorizer. A binding Kafka would not store (no
resource type or operation, a principal that is not TYPE:NAME, a cluster
resource not named "kafka-cluster", ...) answers INVALID_REQUEST.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import InvalidAcl, Operation, checked_binding


async def handle(request):
    creations = request.body["creations"]
    results = [{"error_code": ErrorCode.NONE, "error_message": None} for _ in creations]
    refusal = authorization.acl_refusal(request, Operation.ALTER)
    bindings = []
    for creation, result in zip(creations, results):
        try:
            if refusal is not None:
                raise refusal
            bindings.append(checked_binding(
                creation["resource_type"], creation["resource_name"], creation["resource_pattern_type"],
                creation["principal"], creation["host"], creation["operation"], creation["permission_type"]))
        except InvalidAcl as e:
            result["error_code"], result["error_message"] = ErrorCode.INVALID_REQUEST, str(e)
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"], result["error_message"] = e.code, e.message
    if bindings:
        try:
            await request.acl_store.create_acls(bindings)
        except REFUSALS as e:
            e = kafka_error(e)
            for result in results:
                if result["error_code"] == ErrorCode.NONE:
                    result["error_code"], result["error_message"] = e.code, e.message
    return {"throttle_time_ms": 0, "results": results}
