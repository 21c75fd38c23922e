"""DescribeCluster, v0-2: the cluster id, the live brokers and the
"controller", answered alike by any broker.

Versions: v1 lets the client ask for controller endpoints instead (KIP-919),
which we refuse with UNSUPPORTED_ENDPOINT_TYPE; v2 asks to include fenced
brokers, and none ever are.

Departures from Kafka: there is no controller quorum. The controller id is
the lowest live node id (see ``Broker.controller_id``).
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import OPERATIONS_NOT_REQUESTED, endpoint
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import ResourceType

BROKER_ENDPOINTS = 1


async def handle(request):
    body = request.body
    response = {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "endpoint_type": BROKER_ENDPOINTS,
        "cluster_id": request.config.cluster_id,
        "controller_id": request.view.controller_id(),
        "brokers": [],
        "cluster_authorized_operations": (
            authorization.operations(request, ResourceType.CLUSTER) if body["include_cluster_authorized_operations"]
            else OPERATIONS_NOT_REQUESTED
        ),
    }
    if body.get("endpoint_type", BROKER_ENDPOINTS) != BROKER_ENDPOINTS:
        # Kafscale has no separate controllers to describe.
        response["error_code"] = ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        response["error_message"] = "this is a broker endpoint; Kafscale has no controller endpoints"
        return response
    response["brokers"] = [
        {"broker_id": b.node_id, **endpoint(b, request.listener), "rack": b.rack, "is_fenced": False}
        for b in request.view.live_brokers()
    ]
    return response
