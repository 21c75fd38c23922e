"""AlterUserScramCredentials, v0: add or replace (upsertions: the client
sends the salt, the iteration count and the password it salted with them)
and delete users' SCRAM credentials, one answer per user. As in Kafka, a
user named twice for the same mechanism is DUPLICATE_RESOURCE, an unknown
mechanism UNSUPPORTED_SASL_MECHANISM, iterations outside 4096..16384 or an
empty salt UNACCEPTABLE_CREDENTIAL, deleting a credential that does not
exist RESOURCE_NOT_FOUND; a user with any refused change has none applied.

Authorization: ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED for
every user).

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.security.scram import KAFKA_MECHANISM_TYPES, credential_from_salted_password

_MECHANISMS = {number: name for name, number in KAFKA_MECHANISM_TYPES.items()}


async def handle(request):
    body = request.body
    changes = {}  # user -> list of (mechanism number, upsertion or None for a deletion)
    for deletion in body["deletions"]:
        changes.setdefault(deletion["name"], []).append((deletion["mechanism"], None))
    for upsertion in body["upsertions"]:
        changes.setdefault(upsertion["name"], []).append((upsertion["mechanism"], upsertion))
    results = []
    refusal = None
    if not authorization.allowed(request, Operation.ALTER, ResourceType.CLUSTER):
        refusal = authorization.refusal(Operation.ALTER, ResourceType.CLUSTER)
    for user, wanted in changes.items():
        try:
            if refusal is not None:
                raise refusal
            await _apply(request.credentials, user, wanted)
        except REFUSALS as e:
            error = kafka_error(e)
            results.append({"user": user, "error_code": error.code, "error_message": error.message})
        else:
            results.append({"user": user, "error_code": ErrorCode.NONE, "error_message": None})
    return {"throttle_time_ms": 0, "results": results}


async def _apply(credentials, user, wanted):
    """Check every change of ``user``'s first, then make them."""
    if not user:
        raise KafkaError(ErrorCode.UNACCEPTABLE_CREDENTIAL, "empty user name")
    mechanisms = [number for number, _ in wanted]
    if len(set(mechanisms)) != len(mechanisms):
        raise KafkaError(ErrorCode.DUPLICATE_RESOURCE, f"a mechanism of user {user!r} is changed twice")
    stored = await credentials.scram_credentials(user)
    upserts, deletes = [], []
    for number, upsertion in wanted:
        mechanism = _MECHANISMS.get(number)
        if mechanism is None:
            raise KafkaError(ErrorCode.UNSUPPORTED_SASL_MECHANISM, f"unknown SCRAM mechanism {number}")
        if upsertion is None:
            if mechanism not in stored:
                raise KafkaError(ErrorCode.RESOURCE_NOT_FOUND,
                                 f"attempt to delete a user credential that does not exist: {user} {mechanism}")
            deletes.append(mechanism)
            continue
        if not upsertion["salt"] or not upsertion["salted_password"]:
            raise KafkaError(ErrorCode.UNACCEPTABLE_CREDENTIAL, "empty salt or salted password")
        upserts.append(credential_from_salted_password(mechanism, bytes(upsertion["salt"]),
                                                       bytes(upsertion["salted_password"]), upsertion["iterations"]))
    for mechanism in deletes:
        await credentials.delete_scram_credential(user, mechanism)
    for credential in upserts:
        await credentials.set_scram_credential(user, credential)
