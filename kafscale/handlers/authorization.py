"""What handlers ask the authorizer, and the Kafka error codes of its
refusals: a handler names the operation and the resource, the request's
IAuthorizer decides for the request's principal and client host."""

from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.metadata.acls import CLUSTER_NAME, Operation, ResourceType

REFUSED_WITH = {
    ResourceType.TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


def allowed(request, operation, resource_type, name=CLUSTER_NAME):
    """Whether the request's principal may do ``operation`` on the resource."""
    return request.authorizer.authorize(request.principal, request.client_host, operation, resource_type, name)


def refusal(operation, resource_type, name=CLUSTER_NAME):
    """The KafkaError refusing ``operation`` on the resource."""
    what = "the cluster" if resource_type == ResourceType.CLUSTER else f"{resource_type.name.lower()} {name!r}"
    return KafkaError(REFUSED_WITH[resource_type], f"not authorized to {operation.name} {what}")


def check(request, operation, resource_type, name=CLUSTER_NAME):
    """Raise the KafkaError refusing ``operation`` on the resource, unless allowed."""
    if not allowed(request, operation, resource_type, name):
        raise refusal(operation, resource_type, name)


def check_topic(request, operation, name):
    check(request, operation, ResourceType.TOPIC, name)


def check_group(request, operation, group_id):
    check(request, operation, ResourceType.GROUP, group_id)


def check_cluster(request, operation):
    check(request, operation, ResourceType.CLUSTER)


def may_create_topic(request, name):
    """Kafka's rule: CREATE on the cluster, or on the topic."""
    return allowed(request, Operation.CREATE, ResourceType.CLUSTER) or allowed(
        request, Operation.CREATE, ResourceType.TOPIC, name)


def operations(request, resource_type, name=CLUSTER_NAME):
    """The authorized-operations bit field of the resource for the request's principal."""
    return request.authorizer.authorized_operations(request.principal, request.client_host, resource_type, name)


def acl_refusal(request, operation):
    """The KafkaError refusing a request to describe (DESCRIBE) or change
    (ALTER) the ACLs, or None: the principal must be allowed ``operation`` on
    the cluster, and the broker must enforce ACLs (else SECURITY_DISABLED,
    as Kafka answers without an authorizer)."""
    if not allowed(request, operation, ResourceType.CLUSTER):
        return refusal(operation, ResourceType.CLUSTER)
    if not request.authorizer.enforcing:
        return KafkaError(ErrorCode.SECURITY_DISABLED, "no authorizer: start the brokers with --authorizer acl")
    return None
