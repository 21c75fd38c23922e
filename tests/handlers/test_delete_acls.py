from confluent_kafka import KafkaError
from confluent_kafka.admin import AclBindingFilter, AdminClient
from confluent_kafka.admin import ResourcePatternType as ConfluentPattern
from confluent_kafka.admin import ResourceType as ConfluentType
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError, NoError
from twisted.trial import unittest

from kafscale.metadata.acls import Operation, PatternType, Permission, ResourceType
from tests.support.acls import allow, binding, confluent_binding, grant, kafka_python_filter
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error

ORDERS_READ = binding(ResourceType.TOPIC, "orders", Operation.READ, principal="User:alice")
ORDERS_DENY = binding(ResourceType.TOPIC, "orders", Operation.WRITE, Permission.DENY, principal="User:bob")
PREFIX = binding(ResourceType.TOPIC, "ord", Operation.DESCRIBE, principal="User:carol",
                 pattern_type=PatternType.PREFIXED)
GROUP = binding(ResourceType.GROUP, "billing", Operation.READ, principal="User:alice")


class DeleteAclsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl", "--super-users", "User:ANONYMOUS")
        await grant(self.broker, [ORDERS_READ, ORDERS_DENY, PREFIX, GROUP])

    async def test_kafka_python_deletes_what_each_filter_matches(self):
        def delete():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                return admin.delete_acls([kafka_python_filter(principal="User:alice"),
                                          kafka_python_filter(ResourceType.TOPIC, "orders", PatternType.LITERAL,
                                                              operation=Operation.READ)])
            finally:
                admin.close()

        (_, alice, alice_error), (_, read, read_error) = await in_thread(delete)
        self.assertEqual((alice_error, read_error), (NoError, NoError))
        self.assertEqual(sorted(a.resource_pattern.resource_name for a in alice), ["billing", "orders"])
        self.assertEqual([a.principal for a in read], ["User:alice"])
        self.assertEqual(sorted(await self.broker.metadata.acls()), sorted([ORDERS_DENY, PREFIX]))
        self.assertEqual(self.broker.authorizer.index.bindings, {ORDERS_DENY, PREFIX})

    async def test_confluent_deletes_matching_acls(self):
        def delete():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.delete_acls([AclBindingFilter(ConfluentType.TOPIC, "orders", ConfluentPattern.MATCH,
                                                          None, None, "ANY", "ANY")])
            return [result_or_error(future) for future in futures.values()]

        (deleted,) = await in_thread(delete)
        self.assertEqual(sorted(deleted, key=str), sorted(map(confluent_binding, [ORDERS_READ, ORDERS_DENY, PREFIX]),
                                                          key=str))
        self.assertEqual(await self.broker.metadata.acls(), [GROUP])


class DeleteAclsRefusedTests(unittest.TestCase):
    async def test_without_alter_on_the_cluster(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.DESCRIBE))

        def delete():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.delete_acls([AclBindingFilter(ConfluentType.ANY, None, ConfluentPattern.ANY, None, None,
                                                          "ANY", "ANY")])
            confluent_error = result_or_error(list(futures.values())[0])
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                ((_, _, error),) = kafka_python.delete_acls([kafka_python_filter()])
            finally:
                kafka_python.close()
            return confluent_error, error

        confluent_error, error = await in_thread(delete)
        self.assertEqual(confluent_error.code(), KafkaError.CLUSTER_AUTHORIZATION_FAILED)
        self.assertIs(error, ClusterAuthorizationFailedError)
        self.assertEqual(len(await broker.metadata.acls()), 1)
