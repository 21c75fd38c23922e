"""Access control lists in Kafka's model: what a binding says, what a filter
matches, and which bindings decide an operation on a resource.

A binding (AclBinding) allows or denies one principal (``User:alice``, or
``User:*`` for everyone) one operation on the resources its pattern covers,
from one host (or ``*``). A LITERAL pattern covers the resource of that name
(``*``: every resource of its type), a PREFIXED one every resource whose
name starts with it. The codes are Kafka's, so that they travel unchanged
in CreateAcls, DescribeAcls and DeleteAcls.
"""

import enum
from dataclasses import dataclass

WILDCARD = "*"
"""A literal resource name, principal or host that matches every one."""

WILDCARD_PRINCIPAL = "User:*"

CLUSTER_NAME = "kafka-cluster"
"""The one cluster resource's name, as Kafka names it."""


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


OPERATIONS_OF = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE, Operation.ALTER,
                         Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DELETE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.ALTER, Operation.DESCRIBE, Operation.CLUSTER_ACTION,
                           Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE),
    ResourceType.TRANSACTIONAL_ID: (Operation.WRITE, Operation.DESCRIBE),
}
"""The operations Kafka defines on each kind of resource: what an
authorized-operations answer lists."""

GRANTED_BY = {
    # Kafka's implications: whoever may read, write, delete or alter a
    # resource may describe it, and whoever may alter its configs may
    # describe them.
    Operation.DESCRIBE: frozenset({Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE,
                                   Operation.ALTER, Operation.ALL}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS, Operation.ALL}),
}
"""The operations an ALLOW binding may name to allow each operation (the
operation itself and ALL, when not listed)."""


class InvalidAcl(ValueError):
    """A binding that CreateAcls cannot store, or a filter it cannot read."""


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def covers(self, resource_type, name):
        """Whether this binding's pattern covers the resource."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return self.resource_name in (name, WILDCARD)

    def applies_to(self, principal, host):
        return self.principal in (principal, WILDCARD_PRINCIPAL) and self.host in (host, WILDCARD)

    def to_json(self):
        return {"resource_type": self.resource_type.name, "resource_name": self.resource_name,
                "pattern_type": self.pattern_type.name, "principal": self.principal, "host": self.host,
                "operation": self.operation.name, "permission": self.permission.name}

    @classmethod
    def from_json(cls, value):
        return cls(ResourceType[value["resource_type"]], value["resource_name"], PatternType[value["pattern_type"]],
                   value["principal"], value["host"], Operation[value["operation"]], Permission[value["permission"]])


def checked_binding(resource_type, resource_name, pattern_type, principal, host, operation, permission):
    """The AclBinding of these fields (codes or names), or InvalidAcl saying
    why Kafka would refuse it."""
    try:
        binding = AclBinding(ResourceType(resource_type), resource_name, PatternType(pattern_type), principal,
                             host, Operation(operation), Permission(permission))
    except ValueError as e:
        raise InvalidAcl(str(e)) from None
    if binding.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise InvalidAcl(f"an ACL must name a resource type, not {binding.resource_type.name}")
    if binding.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise InvalidAcl(f"an ACL's pattern type is LITERAL or PREFIXED, not {binding.pattern_type.name}")
    if binding.operation in (Operation.UNKNOWN, Operation.ANY):
        raise InvalidAcl(f"an ACL must name an operation, not {binding.operation.name}")
    if binding.permission not in (Permission.ALLOW, Permission.DENY):
        raise InvalidAcl(f"an ACL's permission is ALLOW or DENY, not {binding.permission.name}")
    if not resource_name:
        raise InvalidAcl("an ACL must name a resource")
    if binding.resource_type == ResourceType.CLUSTER and (
            resource_name != CLUSTER_NAME or binding.pattern_type != PatternType.LITERAL):
        raise InvalidAcl(f"the cluster resource is the literal {CLUSTER_NAME!r}")
    if binding.pattern_type == PatternType.PREFIXED and resource_name == WILDCARD:
        raise InvalidAcl("a prefixed pattern of '*' is not a wildcard: use a literal '*'")
    kind, colon, name = (principal or "").partition(":")
    if not colon or not kind or not name:
        raise InvalidAcl(f"a principal is TYPE:NAME, not {principal!r}")
    if not host:
        raise InvalidAcl("an ACL must name a host, or '*'")
    return binding


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which bindings DescribeAcls and DeleteAcls name: None (and ANY)
    matches any value of a field. A MATCH pattern type matches the bindings
    that would apply to the resource named (literal, wildcard or prefix)."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    @classmethod
    def of(cls, resource_type, resource_name, pattern_type, principal, host, operation, permission):
        """The filter of these fields (codes or names), or InvalidAcl."""
        try:
            found = cls(ResourceType(resource_type), resource_name, PatternType(pattern_type), principal, host,
                        Operation(operation), Permission(permission))
        except ValueError as e:
            raise InvalidAcl(str(e)) from None
        if found.resource_type == ResourceType.UNKNOWN or found.pattern_type == PatternType.UNKNOWN \
                or found.operation == Operation.UNKNOWN or found.permission == Permission.UNKNOWN:
            raise InvalidAcl("a filter cannot match UNKNOWN")
        return found

    def matches(self, binding):
        if self.resource_type != ResourceType.ANY and binding.resource_type != self.resource_type:
            return False
        if self.operation != Operation.ANY and binding.operation != self.operation:
            return False
        if self.permission != Permission.ANY and binding.permission != self.permission:
            return False
        if self.principal is not None and binding.principal != self.principal:
            return False
        if self.host is not None and binding.host != self.host:
            return False
        if self.pattern_type == PatternType.MATCH:
            if self.resource_name is None:
                return True
            if binding.pattern_type == PatternType.PREFIXED:
                return self.resource_name.startswith(binding.resource_name)
            return binding.resource_name in (self.resource_name, WILDCARD)
        if self.pattern_type not in (PatternType.ANY, binding.pattern_type):
            return False
        return self.resource_name is None or binding.resource_name == self.resource_name


class AclIndex:
    """Bindings indexed for deciding: by resource type, literal names in a
    dict, prefixes in a list (there are few)."""

    def __init__(self, bindings=()):
        self.bindings = frozenset(bindings)
        self._literal = {}
        self._prefixed = {}
        for binding in self.bindings:
            if binding.pattern_type == PatternType.PREFIXED:
                self._prefixed.setdefault(binding.resource_type, []).append(binding)
            else:
                self._literal.setdefault((binding.resource_type, binding.resource_name), []).append(binding)

    def __len__(self):
        return len(self.bindings)

    def covering(self, resource_type, name):
        """Every binding whose pattern covers the resource, whoever it names."""
        found = list(self._literal.get((resource_type, name), ()))
        if name != WILDCARD:
            found += self._literal.get((resource_type, WILDCARD), ())
        found += (b for b in self._prefixed.get(resource_type, ()) if name.startswith(b.resource_name))
        return found

    def of_type(self, resource_type):
        """Every binding on resources of ``resource_type``."""
        return [b for b in self.bindings if b.resource_type == resource_type]


def decide(bindings, principal, host, operation):
    """Kafka's rule over the bindings covering a resource: a DENY naming the
    operation (or ALL) wins; else an ALLOW naming an operation that grants
    it allows; else nothing allows it."""
    granted_by = GRANTED_BY.get(operation, frozenset({operation, Operation.ALL}))
    allowed = False
    for binding in bindings:
        if not binding.applies_to(principal, host):
            continue
        if binding.permission == Permission.DENY:
            if binding.operation in (operation, Operation.ALL):
                return False
        elif binding.operation in granted_by:
            allowed = True
    return allowed
