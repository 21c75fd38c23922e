"""FindCoordinator, v0-6: the broker that coordinates each consumer group,
which in a cluster is the owner of the group's coordinator slot.

Versions: v1 adds the key type; v3 is the first flexible version; v4
batches keys (KIP-699), answered one entry per key; v6 adds share groups'
key type.

A transactional id's coordinator is the owner of its slot, placed as a
group id of the same name is (kafscale.coordinator.transactions).

Departures from Kafka: on a broker run without transactions, transaction
keys are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients
(librdkafka's init_transactions() among them) treat as fatal and report at
once, where any other error has them query again until their timeout, as
InitProducerId refuses transactional ids. Share-group keys are refused with
INVALID_REQUEST. While no live broker
holds a group's slot (a handover) the answer is COORDINATOR_NOT_AVAILABLE,
which clients retry.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import endpoint
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType

GROUP_KEY = 0
TRANSACTION_KEY = 1


async def handle(request):
    body = request.body
    key_type = body.get("key_type", GROUP_KEY)
    if request.api_version >= 4:
        return {
            "throttle_time_ms": 0,
            "coordinators": [{"key": key, **_coordinator(request, key_type, key)}
                             for key in body["coordinator_keys"]],
        }
    return {"throttle_time_ms": 0, **_coordinator(request, key_type, body["key"])}


def _coordinator(request, key_type, key):
    view = request.view
    if key_type == GROUP_KEY and not authorization.allowed(request, Operation.DESCRIBE, ResourceType.GROUP, key):
        return _none(ErrorCode.GROUP_AUTHORIZATION_FAILED, f"not authorized to DESCRIBE group {key!r}")
    if key_type == TRANSACTION_KEY and not authorization.allowed(request, Operation.DESCRIBE,
                                                                 ResourceType.TRANSACTIONAL_ID, key):
        return _none(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                     f"not authorized to DESCRIBE transactional id {key!r}")
    if key_type == TRANSACTION_KEY and request.transactions is None:
        return _none(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are off on this broker")
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return _none(ErrorCode.INVALID_REQUEST, f"no coordinators of key type {key_type}")
    owner = view.coordinator_for(key)
    if owner is None:
        return _none(ErrorCode.COORDINATOR_NOT_AVAILABLE, "no broker can coordinate this key now")
    return {"error_code": ErrorCode.NONE, "error_message": None,
            "node_id": owner.node_id, **endpoint(owner, request.listener)}


def _none(error, message):
    return {"error_code": error, "error_message": message, "node_id": -1, "host": "", "port": -1}
