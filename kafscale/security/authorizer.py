"""Who may do what: the authorizer every handler asks, behind IAuthorizer.

Without ``--authorizer acl`` the broker runs AllowEveryone, as Kafka does
without an authorizer class. AclAuthorizer decides from the ACLs in the
metadata store, reloading them whenever the store reports the "acls" area
changed (an etcd watch; the embedded store's poll), so a change made on one
broker, or by ``kafscale-admin``, holds on every broker within a second.
"""

from zope.interface import Attribute, Interface, implementer

from kafscale.metadata.following import FollowingService
from kafscale.metadata.interfaces import IAclStore
from kafscale.metadata.acls import (
    OPERATIONS_OF,
    WILDCARD,
    AclIndex,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    decide,
)


class IAuthorizer(Interface):
    """Decides whether a principal, connected from a host, may do an
    operation on a resource. Every method answers at once, from memory."""

    enforcing = Attribute("Whether ACLs are enforced (False: every principal may do everything).")

    def authorize(principal, host, operation, resource_type, name):
        """-> whether ``principal`` (``User:NAME``) from ``host`` may do
        ``operation`` (an acls.Operation) on the resource ``name`` of
        ``resource_type`` (an acls.ResourceType)."""

    def authorized_operations(principal, host, resource_type, name):
        """-> the operations Kafka defines on the resource that the
        principal may do there, as the bit field authorized-operations
        fields carry (bit n for the operation of code n)."""

    def may_write_some_topic(principal, host):
        """-> whether some ACL lets the principal write to a topic (which
        lets it ask for a producer id, as IDEMPOTENT_WRITE on the cluster
        does: KIP-679)."""


def _bits(operations):
    return sum(1 << operation for operation in operations)


@implementer(IAuthorizer)
class AllowEveryone:
    """No authorization: Kafka's behaviour without an authorizer."""

    enforcing = False

    def authorize(self, principal, host, operation, resource_type, name):
        return True

    def authorized_operations(self, principal, host, resource_type, name):
        return _bits(OPERATIONS_OF[resource_type])

    def may_write_some_topic(self, principal, host):
        return True


ALLOW_EVERYONE = AllowEveryone()


@implementer(IAuthorizer, IAclStore)
class AclAuthorizer(FollowingService):
    """Kafka's ACL authorizer (its StandardAuthorizer's rules) over the ACLs
    of ``metadata`` (an IMetadataStore).

    ``super_users`` (principals) may do everything. An operation on a
    resource that no ACL covers is allowed when
    ``allow_everyone_if_no_acl_found``, else denied. Otherwise a DENY that
    applies wins over any ALLOW, and an ALLOW of the operation or of one
    implying it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
    implies DESCRIBE_CONFIGS; ALL implies all) allows it.

    `load` reads the ACLs (the broker awaits it before it serves); until
    then nothing but super users is allowed.

    It is also the IAclStore the broker's ACL APIs write through: a store
    need not report its own writes, so a change made here is read back at
    once.
    """

    enforcing = True
    area = "acls"
    what = "ACLs"

    def __init__(self, metadata, super_users=(), allow_everyone_if_no_acl_found=False):
        super().__init__(metadata)
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self.index = AclIndex()

    # IAclStore

    def acls(self):
        return self.metadata.acls()

    async def create_acls(self, bindings):
        await self.metadata.create_acls(bindings)
        await self._reread()

    async def delete_acls(self, filters):
        removed = await self.metadata.delete_acls(filters)
        await self._reread()
        return removed

    # Following the store

    def _read(self):
        return self.metadata.acls()

    def _keep(self, acls):
        self.index = AclIndex(acls)

    # IAuthorizer

    def authorize(self, principal, host, operation, resource_type, name):
        if principal in self.super_users:
            return True
        covering = self.index.covering(resource_type, name)
        if not covering:
            return self.allow_everyone_if_no_acl_found
        return decide(covering, principal, host, operation)

    def authorized_operations(self, principal, host, resource_type, name):
        return _bits(operation for operation in OPERATIONS_OF[resource_type]
                     if self.authorize(principal, host, operation, resource_type, name))

    def may_write_some_topic(self, principal, host):
        if principal in self.super_users:
            return True
        bindings = self.index.of_type(ResourceType.TOPIC)
        if not bindings:
            return self.allow_everyone_if_no_acl_found
        applying = [b for b in bindings if b.applies_to(principal, host)
                    and b.operation in (Operation.WRITE, Operation.ALL)]
        # An ALLOW of some topic, unless a DENY of every topic takes it back.
        denied_everywhere = any(b.permission == Permission.DENY and b.resource_name == WILDCARD
                                and b.pattern_type == PatternType.LITERAL for b in applying)
        return not denied_everywhere and any(b.permission == Permission.ALLOW for b in applying)
