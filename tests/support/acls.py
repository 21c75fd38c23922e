"""ACLs for tests: bindings in the broker's own terms and in each admin
client's, and writing them straight into a broker's metadata store (as
``kafscale-admin acls add`` does), waiting until its authorizer follows."""

from confluent_kafka import admin as confluent
from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern
from kafka.admin import ResourcePatternFilter
from kafka.admin import ResourceType as KafkaPythonResourceType

from kafscale.metadata.acls import AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType
from tests.support.waiting import eventually


def binding(resource_type, name, operation, permission=Permission.ALLOW, principal="User:ANONYMOUS", host="*",
            pattern_type=PatternType.LITERAL):
    return AclBinding(resource_type, name, pattern_type, principal, host, operation, permission)


def allow(resource_type, name, *operations, **kwargs):
    return [binding(resource_type, name, operation, **kwargs) for operation in operations]


def deny(resource_type, name, *operations, **kwargs):
    return [binding(resource_type, name, operation, Permission.DENY, **kwargs) for operation in operations]


async def grant(broker, bindings):
    """Store ``bindings`` and wait until the broker's authorizer has them."""
    await broker.acl_store.create_acls(bindings)
    await eventually(lambda: set(bindings) <= broker.authorizer.index.bindings, what="the authorizer sees the ACLs")


async def revoke_all(broker):
    await broker.acl_store.delete_acls([AclFilter()])
    await eventually(lambda: not broker.authorizer.index.bindings, what="the authorizer forgets the ACLs")


def confluent_binding(b):
    """The confluent-kafka AclBinding of an acls.AclBinding."""
    return confluent.AclBinding(
        # confluent-kafka names the cluster BROKER.
        confluent.ResourceType(int(b.resource_type)), b.resource_name,
        confluent.ResourcePatternType[b.pattern_type.name], b.principal, b.host,
        confluent.AclOperation[b.operation.name], confluent.AclPermissionType[b.permission.name])


def kafka_python_acl(b):
    """The kafka-python ACL of an acls.AclBinding."""
    return ACL(b.principal, b.host, ACLOperation[b.operation.name], ACLPermissionType[b.permission.name],
               ResourcePattern(KafkaPythonResourceType[b.resource_type.name], b.resource_name,
                               ACLResourcePatternType[b.pattern_type.name]))


def kafka_python_filter(resource_type=ResourceType.ANY, name=None, pattern_type=PatternType.ANY, principal=None,
                        host=None, operation=Operation.ANY, permission=Permission.ANY):
    return ACLFilter(principal, host, ACLOperation[operation.name], ACLPermissionType[permission.name],
                     ResourcePatternFilter(KafkaPythonResourceType[resource_type.name], name,
                                           ACLResourcePatternType[pattern_type.name]))
