from confluent_kafka.admin import AclBindingFilter, AdminClient
from confluent_kafka.admin import ResourcePatternType as ConfluentPattern
from confluent_kafka.admin import ResourceType as ConfluentType
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.metadata.acls import Operation, PatternType, Permission, ResourceType
from tests.support.acls import allow, binding, confluent_binding, grant, kafka_python_acl, kafka_python_filter
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from tests.support.wire import Connection

ORDERS_READ = binding(ResourceType.TOPIC, "orders", Operation.READ, principal="User:alice")
ORDERS_DENY = binding(ResourceType.TOPIC, "orders", Operation.WRITE, Permission.DENY, principal="User:bob")
PREFIX = binding(ResourceType.TOPIC, "ord", Operation.DESCRIBE, principal="User:carol",
                 pattern_type=PatternType.PREFIXED)
EVERY_TOPIC = binding(ResourceType.TOPIC, "*", Operation.DESCRIBE, principal="User:dave")
GROUP = binding(ResourceType.GROUP, "billing", Operation.READ, principal="User:alice")


class DescribeAclsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl", "--super-users", "User:ANONYMOUS")
        await grant(self.broker, [ORDERS_READ, ORDERS_DENY, PREFIX, EVERY_TOPIC, GROUP])

    async def test_kafka_python_filters(self):
        def describe():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                return [sorted((a.principal, a.resource_pattern.resource_name) for a in admin.describe_acls(f)[0])
                        for f in (kafka_python_filter(),
                                  kafka_python_filter(ResourceType.TOPIC, "orders", PatternType.LITERAL),
                                  kafka_python_filter(ResourceType.TOPIC, "orders", PatternType.MATCH),
                                  kafka_python_filter(principal="User:alice"),
                                  kafka_python_filter(permission=Permission.DENY),
                                  kafka_python_filter(ResourceType.GROUP, pattern_type=PatternType.PREFIXED))]
            finally:
                admin.close()

        every, literal, matching, alice, denied, prefixed_groups = await in_thread(describe)
        self.assertEqual(every, sorted([("User:alice", "orders"), ("User:bob", "orders"), ("User:carol", "ord"),
                                        ("User:dave", "*"), ("User:alice", "billing")]))
        self.assertEqual(literal, [("User:alice", "orders"), ("User:bob", "orders")])
        self.assertEqual(matching, [("User:alice", "orders"), ("User:bob", "orders"), ("User:carol", "ord"),
                                    ("User:dave", "*")])
        self.assertEqual(alice, [("User:alice", "billing"), ("User:alice", "orders")])
        self.assertEqual(denied, [("User:bob", "orders")])
        self.assertEqual(prefixed_groups, [])

    async def test_confluent_describes(self):
        def describe():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            future = admin.describe_acls(AclBindingFilter(ConfluentType.TOPIC, None, ConfluentPattern.PREFIXED,
                                                          None, None, "ANY", "ANY"))
            return result_or_error(future)

        self.assertEqual(await in_thread(describe), [confluent_binding(PREFIX)])


class DescribeAclsRefusedTests(unittest.TestCase):
    async def test_without_describe_on_the_cluster(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.TOPIC, "*", Operation.ALL))

        def describe():
            # confluent-kafka 2.16 answers an empty list for DescribeAcls' top-level error: ask by hand.
            connection = Connection(bootstrap)
            try:
                answer = connection.request(ApiKey.DESCRIBE_ACLS, 3, {
                    "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
                    "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1})
            finally:
                connection.close()
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                kafka_python.describe_acls(kafka_python_filter())
            except ClusterAuthorizationFailedError:
                refused = True
            else:
                refused = False
            finally:
                kafka_python.close()
            return answer, refused

        answer, refused = await in_thread(describe)
        self.assertEqual((answer["error_code"], answer["resources"]), (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, []))
        self.assertTrue(refused)

    async def test_allowed_by_alter_on_the_cluster(self):
        # ALTER implies DESCRIBE.
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.ALTER))

        def describe():
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                created = admin.create_acls([kafka_python_acl(GROUP)])
                return created["failed"], admin.describe_acls(kafka_python_filter(ResourceType.GROUP))[0]
            finally:
                admin.close()

        failed, described = await in_thread(describe)
        self.assertEqual(failed, [])
        self.assertEqual([a.principal for a in described], ["User:alice"])
