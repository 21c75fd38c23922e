"""KafscaleUsers reconciled through the Kafka Admin API.

`plan` is pure: (the user wanted, the user as the cluster has it) -> the
admin actions that make them agree. A SCRAM credential cannot be read
back (only its mechanism and iterations), so the password is set again
whenever the Secret holding it changed since it was last set (its uid and
resourceVersion, recorded in the resource's status) or the credential is
missing. The user's ACLs are exactly the resource's: others naming the
user's principal are deleted. `KafkaUsers` carries the actions out with
confluent-kafka's AdminClient; its calls block (run them in a thread)."""

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

CLUSTER_RESOURCE_NAME = "kafka-cluster"

_RESOURCE_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}
_OPERATIONS = {
    "All": "ALL", "Read": "READ", "Write": "WRITE", "Create": "CREATE", "Delete": "DELETE", "Alter": "ALTER",
    "Describe": "DESCRIBE", "ClusterAction": "CLUSTER_ACTION", "DescribeConfigs": "DESCRIBE_CONFIGS",
    "AlterConfigs": "ALTER_CONFIGS", "IdempotentWrite": "IDEMPOTENT_WRITE",
}
# the resource's quota fields -> Kafka's quota keys
QUOTA_KEYS = {"producerByteRate": "producer_byte_rate", "consumerByteRate": "consumer_byte_rate",
              "requestPercentage": "request_percentage"}


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL of the user's principal, in Kafka's names (TOPIC, LITERAL,
    READ, ALLOW)."""

    resource_type: str
    resource_name: str
    pattern_type: str
    operation: str
    permission: str
    host: str


@dataclass(frozen=True)
class UserSpec:
    name: str
    mechanism: str  # SCRAM-SHA-512 or SCRAM-SHA-256
    iterations: int
    password: bytes = field(repr=False)
    password_version: str  # of the Secret the password came from
    acls: frozenset = frozenset()
    quotas: dict = field(default_factory=dict)  # Kafka's quota key -> value

    @property
    def principal(self):
        return f"User:{self.name}"


@dataclass(frozen=True)
class UserState:
    credentials: dict = field(default_factory=dict)  # mechanism -> iterations
    acls: frozenset = frozenset()
    quotas: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SetCredential:
    name: str
    mechanism: str
    iterations: int
    password: bytes = field(repr=False)


@dataclass(frozen=True)
class DeleteCredential:
    name: str
    mechanism: str


@dataclass(frozen=True)
class CreateAcls:
    principal: str
    acls: tuple


@dataclass(frozen=True)
class DeleteAcls:
    principal: str
    acls: tuple


@dataclass(frozen=True)
class AlterQuotas:
    name: str
    set: dict
    remove: tuple


def acls_of(rules):
    """The Acls of a KafscaleUser's ``spec.authorization.acls`` (defaults
    applied): one per operation of each rule."""
    acls = set()
    for rule in rules:
        resource = rule["resource"]
        kind = _RESOURCE_TYPES[resource["type"]]
        name = CLUSTER_RESOURCE_NAME if kind == "CLUSTER" else resource["name"]
        for operation in rule["operations"]:
            acls.add(Acl(kind, name, resource.get("patternType", "literal").upper(), _OPERATIONS[operation],
                         rule.get("type", "allow").upper(), rule.get("host", "*")))
    return frozenset(acls)


def check(spec):
    """-> problems with a user's spec that its schema cannot catch."""
    problems = []
    for rule in (spec.get("authorization") or {}).get("acls", []):
        resource = rule["resource"]
        if resource["type"] != "cluster" and not resource.get("name"):
            problems.append(f"an ACL on a {resource['type']} needs resource.name")
    return problems


def spec_of(resource, password, password_version):
    """The UserSpec of a KafscaleUser (defaults applied), with the password
    read from its Secret."""
    spec = resource["spec"]
    authentication = spec["authentication"]
    return UserSpec(
        name=resource["metadata"]["name"],
        mechanism=authentication["type"].upper(),
        iterations=authentication.get("iterations", 8192),
        password=password,
        password_version=password_version,
        acls=acls_of((spec.get("authorization") or {}).get("acls", [])),
        quotas={QUOTA_KEYS[name]: float(value) for name, value in (spec.get("quotas") or {}).items()},
    )


def plan(wanted, observed, applied_password_version=None):
    """-> the actions turning ``observed`` (UserState) into ``wanted``
    (UserSpec). ``applied_password_version``: the Secret version whose
    password was last set (the status), None if never."""
    actions = []
    if (observed.credentials.get(wanted.mechanism) != wanted.iterations
            or applied_password_version != wanted.password_version):
        actions.append(SetCredential(wanted.name, wanted.mechanism, wanted.iterations, wanted.password))
    for mechanism in sorted(observed.credentials):
        if mechanism != wanted.mechanism:
            actions.append(DeleteCredential(wanted.name, mechanism))
    missing = tuple(sorted(wanted.acls - observed.acls))
    extra = tuple(sorted(observed.acls - wanted.acls))
    if extra:
        actions.append(DeleteAcls(wanted.principal, extra))
    if missing:
        actions.append(CreateAcls(wanted.principal, missing))
    changed = {key: value for key, value in wanted.quotas.items() if observed.quotas.get(key) != value}
    removed = tuple(sorted(key for key in observed.quotas if key not in wanted.quotas))
    if changed or removed:
        actions.append(AlterQuotas(wanted.name, changed, removed))
    return tuple(actions)


def deletion(name, observed, policy):
    """-> the actions when the resource is deleted under ``policy``."""
    if policy == "orphan":
        return ()
    actions = [DeleteCredential(name, mechanism) for mechanism in sorted(observed.credentials)]
    if observed.acls:
        actions.append(DeleteAcls(f"User:{name}", tuple(sorted(observed.acls))))
    if observed.quotas:
        actions.append(AlterQuotas(name, {}, tuple(sorted(observed.quotas))))
    return tuple(actions)


class UserError(Exception):
    """The cluster refused an action or could not be asked."""


class KafkaUsers:
    """Observes users and applies plans through ``admin`` (a
    confluent_kafka AdminClient) and ``quotas`` (a ClientQuotas).
    Blocking."""

    def __init__(self, admin, quotas, timeout=30.0):
        self.admin = admin
        self.quotas = quotas
        self.timeout = timeout

    def observe(self, name):
        try:
            description = self.admin.describe_user_scram_credentials(
                [name], request_timeout=self.timeout)[name].result(timeout=self.timeout)
            credentials = {_mechanism_name(info.mechanism): info.iterations
                           for info in description.scram_credential_infos}
        except KafkaException as error:
            if not error.args or error.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
                raise UserError(f"user {name}: {_text(error)}") from error
            credentials = {}
        try:
            bindings = self.admin.describe_acls(AclBindingFilter(
                ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{name}", None, AclOperation.ANY,
                AclPermissionType.ANY), request_timeout=self.timeout).result(timeout=self.timeout)
        except KafkaException as error:
            # a cluster without an authorizer, or without the ACL APIs, has
            # no ACLs (creating one says why it cannot)
            if not error.args or error.args[0].code() not in (KafkaError.SECURITY_DISABLED,
                                                               KafkaError._UNSUPPORTED_FEATURE):
                raise UserError(f"user {name}: {_text(error)}") from error
            bindings = []
        return UserState(credentials, frozenset(_acl_of(binding) for binding in bindings), self.quotas.describe(name))

    def apply(self, action):
        if isinstance(action, SetCredential):
            info = ScramCredentialInfo(_MECHANISMS[action.mechanism], action.iterations)
            self._alter_credentials(UserScramCredentialUpsertion(action.name, info, action.password))
        elif isinstance(action, DeleteCredential):
            self._alter_credentials(UserScramCredentialDeletion(action.name, _MECHANISMS[action.mechanism]))
        elif isinstance(action, CreateAcls):
            bindings = [_binding(action.principal, acl) for acl in action.acls]
            for future in self.admin.create_acls(bindings, request_timeout=self.timeout).values():
                self._result(future)
        elif isinstance(action, DeleteAcls):
            filters = [_binding(action.principal, acl, AclBindingFilter) for acl in action.acls]
            for future in self.admin.delete_acls(filters, request_timeout=self.timeout).values():
                self._result(future)
        elif isinstance(action, AlterQuotas):
            self.quotas.alter(action.name, action.set, action.remove)
        else:
            raise TypeError(action)

    def reconcile(self, wanted, applied_password_version=None):
        """Observe, plan and apply: -> the actions carried out."""
        actions = plan(wanted, self.observe(wanted.name), applied_password_version)
        for action in actions:
            self.apply(action)
        return actions

    def delete(self, name, policy):
        for action in deletion(name, self.observe(name), policy):
            self.apply(action)

    def _alter_credentials(self, alteration):
        for future in self.admin.alter_user_scram_credentials([alteration], request_timeout=self.timeout).values():
            self._result(future)

    def _result(self, future):
        try:
            return future.result(timeout=self.timeout)
        except KafkaException as error:
            raise UserError(_text(error)) from error
        except TimeoutError as error:
            raise UserError("the cluster did not answer in time") from error


_MECHANISMS = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512, "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}
# librdkafka calls Kafka's CLUSTER resource type BROKER
_CONFLUENT_TYPES = {"CLUSTER": ResourceType.BROKER}


def _mechanism_name(mechanism):
    return mechanism.name.replace("_", "-")


def _binding(principal, acl, kind=AclBinding):
    restype = _CONFLUENT_TYPES.get(acl.resource_type) or ResourceType[acl.resource_type]
    return kind(restype, acl.resource_name, ResourcePatternType[acl.pattern_type], principal, acl.host,
                AclOperation[acl.operation], AclPermissionType[acl.permission])


def _acl_of(binding):
    kind = "CLUSTER" if binding.restype == ResourceType.BROKER else binding.restype.name
    return Acl(kind, binding.name, binding.resource_pattern_type.name, binding.operation.name,
               binding.permission_type.name, binding.host)


def _text(error):
    return error.args[0].str() if error.args and isinstance(error.args[0], KafkaError) else str(error)
