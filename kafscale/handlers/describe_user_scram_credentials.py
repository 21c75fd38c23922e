"""DescribeUserScramCredentials, v0: each user's SCRAM mechanisms and their
iteration counts (never the salts or keys), for the users named, or for
every user when none is named. A named user without credentials is
RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE, as in Kafka.

Authorization: DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED).

Departures from Kafka: none that a client sees.
"""

from collections import Counter

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.security.scram import KAFKA_MECHANISM_TYPES


async def handle(request):
    named = request.body["users"]
    if not authorization.allowed(request, Operation.DESCRIBE, ResourceType.CLUSTER):
        refusal = authorization.refusal(Operation.DESCRIBE, ResourceType.CLUSTER)
        return {"throttle_time_ms": 0, "error_code": refusal.code, "error_message": refusal.message, "results": []}
    try:
        users = await request.credentials.scram_credentials()
    except REFUSALS as e:
        error = kafka_error(e)
        return {"throttle_time_ms": 0, "error_code": error.code, "error_message": error.message, "results": []}
    if named is None or not named:
        wanted = sorted(users)
        counts = Counter()
    else:
        wanted = [entry["name"] for entry in named]
        counts = Counter(wanted)
    results = []
    for name in dict.fromkeys(wanted):
        if counts[name] > 1:
            results.append(_failed(name, ErrorCode.DUPLICATE_RESOURCE, f"user {name!r} named more than once"))
        elif not users.get(name):
            results.append(_failed(name, ErrorCode.RESOURCE_NOT_FOUND, f"attempt to describe a user credential"
                                   f" that does not exist: {name}"))
        else:
            results.append({"user": name, "error_code": ErrorCode.NONE, "error_message": None, "credential_infos": [
                {"mechanism": KAFKA_MECHANISM_TYPES[mechanism], "iterations": credential.iterations}
                for mechanism, credential in sorted(users[name].items()) if mechanism in KAFKA_MECHANISM_TYPES
            ]})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "results": results}


def _failed(name, code, message):
    return {"user": name, "error_code": code, "error_message": message, "credential_infos": []}
