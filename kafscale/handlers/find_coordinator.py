"""FindCoordinator, every version, single keys and batched (v4+): the
broker that coordinates each consumer group."""

from kafscale.handlers import handles
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey

GROUP_KEY = 0


@handles(ApiKey.FIND_COORDINATOR)
async def find_coordinator(request):
    body, broker = request.body, request.broker
    key_type = body.get("key_type", GROUP_KEY)
    if request.api_version >= 4:
        return {
            "throttle_time_ms": 0,
            "coordinators": [{"key": key, **_coordinator(broker, key_type, key)} for key in body["coordinator_keys"]],
        }
    return {"throttle_time_ms": 0, **_coordinator(broker, key_type, body["key"])}


def _coordinator(broker, key_type, key):
    if key_type != GROUP_KEY:
        # Transactions and share groups have no coordinator here.
        return _none(ErrorCode.INVALID_REQUEST, f"no coordinators of key type {key_type}")
    owner = broker.coordinator_for(key)
    if owner is None:
        return _none(ErrorCode.COORDINATOR_NOT_AVAILABLE, "no broker can coordinate this group now")
    return {"error_code": ErrorCode.NONE, "error_message": None,
            "node_id": owner.node_id, "host": owner.host, "port": owner.port}


def _none(error, message):
    return {"error_code": error, "error_message": message, "node_id": -1, "host": "", "port": -1}
