
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError, InvalidRequestError, SecurityDisabledError
from twisted.internet import reactor
from twisted.trial import unittest

from kafscale.protocol.messages import ApiKey
from kafscale.metadata.acls import Operation, PatternType, Permission, ResourceType
from tests.support.acls import allow, binding, confluent_binding, grant, kafka_python_acl
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from tests.support.etcd_server import etcd_cluster
from tests.support.waiting import eventually
from tests.support.wire import Connection


class CreateAclsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl", "--super-users", "User:ANONYMOUS")

    async def test_confluent_creates_acls(self):
        wanted = [binding(ResourceType.TOPIC, "orders", Operation.READ, principal="User:alice"),
                  binding(ResourceType.GROUP, "billing-", Operation.ALL, Permission.DENY, principal="User:bob",
                          host="10.0.0.1", pattern_type=PatternType.PREFIXED),
                  binding(ResourceType.TRANSACTIONAL_ID, "tx", Operation.WRITE, principal="User:carol"),
                  binding(ResourceType.CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE, principal="User:*")]

        def create():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.create_acls([confluent_binding(b) for b in wanted])
            return [result_or_error(future) for future in futures.values()]

        self.assertEqual(await in_thread(create), [None] * 4)
        self.assertEqual(sorted(await self.broker.metadata.acls()), sorted(wanted))

    async def test_kafka_python_creates_acls_and_invalid_ones_are_refused(self):
        good = binding(ResourceType.TOPIC, "orders", Operation.WRITE, principal="User:alice")
        bad_principal = binding(ResourceType.TOPIC, "orders", Operation.WRITE, principal="alice")
        bad_cluster = binding(ResourceType.CLUSTER, "other", Operation.ALTER)

        def create():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                return admin.create_acls([kafka_python_acl(b) for b in (good, bad_principal, bad_cluster)])
            finally:
                admin.close()

        result = await in_thread(create)
        self.assertEqual(len(result["succeeded"]), 1)
        self.assertEqual(result["failed"], [InvalidRequestError, InvalidRequestError])
        self.assertEqual(await self.broker.metadata.acls(), [good])


class CreateAclsRefusedTests(unittest.TestCase):
    async def test_without_alter_on_the_cluster(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.DESCRIBE))

        def create():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_acls([confluent_binding(binding(ResourceType.TOPIC, "t", Operation.READ))])
            confluent_error = result_or_error(list(futures.values())[0])
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                failed = kafka_python.create_acls(
                    [kafka_python_acl(binding(ResourceType.TOPIC, "t", Operation.READ))])["failed"]
            finally:
                kafka_python.close()
            return confluent_error, failed

        confluent_error, failed = await in_thread(create)
        self.assertEqual(confluent_error.code(), KafkaError.CLUSTER_AUTHORIZATION_FAILED)
        self.assertEqual(failed, [ClusterAuthorizationFailedError])
        self.assertEqual(len(await broker.metadata.acls()), 1)

    async def test_without_an_authorizer(self):
        _, bootstrap = await start_broker(self)

        def create():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_acls([confluent_binding(binding(ResourceType.TOPIC, "t", Operation.READ))])
            confluent_error = result_or_error(list(futures.values())[0])
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                failed = kafka_python.create_acls(
                    [kafka_python_acl(binding(ResourceType.TOPIC, "t", Operation.READ))])["failed"]
            finally:
                kafka_python.close()
            return confluent_error, failed

        confluent_error, failed = await in_thread(create)
        self.assertEqual(confluent_error.code(), KafkaError.SECURITY_DISABLED)
        self.assertEqual(failed, [SecurityDisabledError])


class AclsAcrossBrokersTests(unittest.TestCase):
    async def test_an_acl_created_through_one_broker_holds_on_another_within_a_second(self):
        cluster = [*etcd_cluster("acls"), "--authorizer", "acl", "--allow-everyone-if-no-acl-found", "true"]
        first, first_bootstrap = await start_broker(self, *cluster)
        second, second_bootstrap = await start_broker(self, *cluster)
        await first.topics.create("secret", 1, {})
        await eventually(lambda: "secret" in second.topics)
        denied = binding(ResourceType.TOPIC, "secret", Operation.DESCRIBE, Permission.DENY)

        def create():
            admin = AdminClient({"bootstrap.servers": first_bootstrap})
            return [result_or_error(f) for f in admin.create_acls([confluent_binding(denied)]).values()]

        def listed():
            connection = Connection(second_bootstrap)
            try:
                return [t["name"] for t in connection.request(ApiKey.METADATA, 12, {
                    "topics": None, "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False})["topics"]]
            finally:
                connection.close()

        self.assertEqual(await in_thread(listed), ["secret"])
        self.assertEqual(await in_thread(create), [None])
        created = reactor.seconds()
        await eventually(lambda: denied in second.authorizer.index.bindings, timeout=1.0,
                         what="the second broker follows the ACL")
        self.assertLess(reactor.seconds() - created, 1.0)
        self.assertEqual(await in_thread(listed), [])
