from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from twisted.trial import unittest

from kafscale_operator import users
from kafscale_operator.users import (
    Acl,
    AlterQuotas,
    CreateAcls,
    DeleteAcls,
    DeleteCredential,
    SetCredential,
    UserSpec,
    UserState,
    acls_of,
    plan,
)
from kafscale_operator.crds import with_defaults
from kafscale_operator.quotas import ClientQuotas
from kafscale_operator.users import KafkaUsers
from tests.support.brokers import in_thread
from tests.support.tls import start_secure_broker
from tests.support.waiting import eventually

READ_ORDERS = Acl("TOPIC", "orders", "LITERAL", "READ", "ALLOW", "*")
DESCRIBE_ORDERS = Acl("TOPIC", "orders", "LITERAL", "DESCRIBE", "ALLOW", "*")
READ_GROUPS = Acl("GROUP", "billing-", "PREFIXED", "READ", "ALLOW", "*")


def user_resource(**spec):
    return with_defaults("KafscaleUser", {
        "kind": "KafscaleUser", "metadata": {"name": "billing"},
        "spec": {"authentication": {"type": "scram-sha-512",
                                    "password": {"valueFrom": {"secretKeyRef": {"name": "billing-password"}}}},
                 **spec}})


def wanted(acls=frozenset({READ_ORDERS}), quotas=None, version="v1", mechanism="SCRAM-SHA-512", password=b"secret"):
    return UserSpec("billing", mechanism, 8192, password, version, frozenset(acls), quotas or {})


class SpecTests(unittest.TestCase):
    def test_rules_become_one_acl_per_operation(self):
        resource = user_resource(authorization={"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
            {"resource": {"type": "group", "name": "billing-", "patternType": "prefixed"}, "operations": ["Read"]},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"], "type": "deny", "host": "10.0.0.1"},
        ]})
        spec = users.spec_of(resource, b"pw", "uid/7")
        self.assertEqual(spec.acls, {READ_ORDERS, DESCRIBE_ORDERS, READ_GROUPS,
                                     Acl("CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "DENY", "10.0.0.1")})
        self.assertEqual((spec.name, spec.principal, spec.mechanism, spec.iterations),
                         ("billing", "User:billing", "SCRAM-SHA-512", 8192))

    def test_quotas_in_kafkas_names(self):
        spec = users.spec_of(user_resource(quotas={"producerByteRate": 1024, "requestPercentage": 50}), b"pw", "v")
        self.assertEqual(spec.quotas, {"producer_byte_rate": 1024.0, "request_percentage": 50.0})

    def test_an_acl_without_its_resource_name(self):
        spec = user_resource(authorization={"acls": [{"resource": {"type": "topic"}, "operations": ["Read"]}]})["spec"]
        self.assertEqual(users.check(spec), ["an ACL on a topic needs resource.name"])

    def test_the_password_is_not_shown(self):
        self.assertNotIn("secret", repr(wanted()))
        self.assertNotIn("secret", repr(SetCredential("billing", "SCRAM-SHA-512", 8192, b"secret")))


class PlanTests(unittest.TestCase):
    def test_a_new_user(self):
        self.assertEqual(plan(wanted(quotas={"producer_byte_rate": 10.0}), UserState()), (
            SetCredential("billing", "SCRAM-SHA-512", 8192, b"secret"),
            CreateAcls("User:billing", (READ_ORDERS,)),
            AlterQuotas("billing", {"producer_byte_rate": 10.0}, ()),
        ))

    def test_in_sync(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({READ_ORDERS}), {})
        self.assertEqual(plan(wanted(), observed, applied_password_version="v1"), ())

    def test_a_changed_secret_sets_the_password_again(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({READ_ORDERS}), {})
        self.assertEqual(plan(wanted(version="v2"), observed, applied_password_version="v1"),
                         (SetCredential("billing", "SCRAM-SHA-512", 8192, b"secret"),))

    def test_a_credential_deleted_behind_its_back_is_set_again(self):
        observed = UserState({}, frozenset({READ_ORDERS}), {})
        self.assertEqual(plan(wanted(), observed, applied_password_version="v1"),
                         (SetCredential("billing", "SCRAM-SHA-512", 8192, b"secret"),))

    def test_another_mechanism_is_removed(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({READ_ORDERS}), {})
        self.assertEqual(plan(wanted(mechanism="SCRAM-SHA-256"), observed, applied_password_version="v1"), (
            SetCredential("billing", "SCRAM-SHA-256", 8192, b"secret"),
            DeleteCredential("billing", "SCRAM-SHA-512"),
        ))

    def test_acls_made_elsewhere_go_and_missing_ones_come(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({DESCRIBE_ORDERS, READ_GROUPS}), {})
        self.assertEqual(plan(wanted(acls={READ_ORDERS, READ_GROUPS}), observed, applied_password_version="v1"), (
            DeleteAcls("User:billing", (DESCRIBE_ORDERS,)),
            CreateAcls("User:billing", (READ_ORDERS,)),
        ))

    def test_quotas_changed_and_removed(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({READ_ORDERS}),
                             {"producer_byte_rate": 5.0, "consumer_byte_rate": 7.0})
        self.assertEqual(plan(wanted(quotas={"producer_byte_rate": 10.0}), observed, applied_password_version="v1"),
                         (AlterQuotas("billing", {"producer_byte_rate": 10.0}, ("consumer_byte_rate",)),))

    def test_deletion_follows_the_policy(self):
        observed = UserState({"SCRAM-SHA-512": 8192}, frozenset({READ_ORDERS}), {"producer_byte_rate": 5.0})
        self.assertEqual(users.deletion("billing", observed, "delete"), (
            DeleteCredential("billing", "SCRAM-SHA-512"),
            DeleteAcls("User:billing", (READ_ORDERS,)),
            AlterQuotas("billing", {}, ("producer_byte_rate",)),
        ))
        self.assertEqual(users.deletion("billing", observed, "orphan"), ())
        self.assertEqual(users.deletion("billing", UserState(), "delete"), ())

    def test_acls_of_an_empty_list(self):
        self.assertEqual(acls_of([]), frozenset())


class ReconcileTests(unittest.TestCase):
    """The user reconciler against a real broker enforcing ACLs, the
    operator (anonymous here) its super user."""

    async def reconciler(self, broker_args=("--authorizer", "acl", "--super-users", "User:ANONYMOUS")):
        service, self.bootstraps = await start_secure_broker(self, None, *broker_args)
        self.listeners = service.getServiceNamed("listener").listeners
        settings = {"bootstrap.servers": self.bootstraps["PLAINTEXT"]}
        # kafka-python's client connects as it is made: not on the reactor, which runs the broker
        quotas = await in_thread(ClientQuotas.from_settings, settings)
        self.addCleanup(in_thread, quotas.close)
        held = [KafkaUsers(AdminClient(settings), quotas, timeout=15)]
        self.addCleanup(held.clear)  # the AdminClient goes before its broker
        return held

    def logs_in(self, mechanism, password):
        """Whether billing logs in with ``password`` (a refusal costs the 3 s
        librdkafka takes to give up)."""
        admin = AdminClient({"bootstrap.servers": self.bootstraps["SASL_PLAINTEXT"], "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": mechanism, "sasl.username": "billing", "sasl.password": password})
        try:
            admin.list_topics(timeout=3)
        except KafkaException:
            return False
        return True

    async def refused(self, mechanism, password):
        self.assertFalse(await in_thread(self.logs_in, mechanism, password))
        # a refusal is answered after a delay, then closed: nothing of it may outlive the test
        await eventually(lambda: not any(factory.connections for _, _, factory in self.listeners
                                         if factory.security.name == "SASL_PLAINTEXT"),
                         what="the refused connection closed")

    async def test_credentials(self):
        """Set, rotated with its Secret, moved to another mechanism and
        deleted: each time the user logs in with what the resource says."""
        # refusals answered at once: librdkafka retries a refused login until it gives up,
        # and a delayed answer to its last try would outlive the test
        [reconciler] = await self.reconciler(broker_args=("--failed-authentication-delay-ms", "0"))
        done = await in_thread(reconciler.reconcile, wanted(acls=set()))
        self.assertEqual(done, (SetCredential("billing", "SCRAM-SHA-512", 8192, b"secret"),))
        self.assertEqual((await in_thread(reconciler.observe, "billing")).credentials, {"SCRAM-SHA-512": 8192})
        self.assertTrue(await in_thread(self.logs_in, "SCRAM-SHA-512", "secret"))
        self.assertEqual(await in_thread(reconciler.reconcile, wanted(acls=set()), "v1"), ())

        rotated = wanted(acls=set(), version="v2", password=b"rotated")
        await in_thread(reconciler.reconcile, rotated, "v1")
        self.assertTrue(await in_thread(self.logs_in, "SCRAM-SHA-512", "rotated"))
        await self.refused("SCRAM-SHA-512", "secret")

        moved = wanted(acls=set(), version="v2", password=b"rotated", mechanism="SCRAM-SHA-256")
        await in_thread(reconciler.reconcile, moved, "v2")
        self.assertEqual((await in_thread(reconciler.observe, "billing")).credentials, {"SCRAM-SHA-256": 8192})
        self.assertTrue(await in_thread(self.logs_in, "SCRAM-SHA-256", "rotated"))

        await in_thread(reconciler.delete, "billing", "delete")
        self.assertEqual((await in_thread(reconciler.observe, "billing")).credentials, {})
        await self.refused("SCRAM-SHA-256", "rotated")

    async def test_acls_and_quotas(self):
        [reconciler] = await self.reconciler()
        quotas = {"producer_byte_rate": 1048576.0}
        await in_thread(reconciler.reconcile, wanted(acls={READ_ORDERS, READ_GROUPS}, quotas=quotas))
        state = await in_thread(reconciler.observe, "billing")
        self.assertEqual((state.acls, state.quotas), ({READ_ORDERS, READ_GROUPS}, quotas))
        self.assertEqual(await in_thread(reconciler.reconcile, wanted(acls={READ_ORDERS, READ_GROUPS}, quotas=quotas),
                                         "v1"), ())

        await in_thread(reconciler.reconcile, wanted(acls={DESCRIBE_ORDERS}), "v1")
        state = await in_thread(reconciler.observe, "billing")
        self.assertEqual((state.acls, state.quotas), ({DESCRIBE_ORDERS}, {}))

        await in_thread(reconciler.delete, "billing", "delete")
        self.assertEqual(await in_thread(reconciler.observe, "billing"), UserState({}, frozenset(), {}))
