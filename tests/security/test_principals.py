"""ACLs and quotas for distinct users authenticated with SASL/SCRAM, through
real clients: a principal allowed WRITE but not READ, deny beating allow,
prefixed ACLs, super users, per-user quotas, and the SCRAM credential APIs
refused to who may not alter the cluster."""

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism
from confluent_kafka.admin import UserScramCredentialUpsertion
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError
from twisted.trial import unittest

from kafscale.metadata.acls import Operation, PatternType, ResourceType
from tests.support.acls import allow, binding, confluent_binding, deny, kafka_python_filter
from tests.support.brokers import in_thread
from tests.support.clients import result_or_error
from tests.support.tls import add_user, start_secure_broker

USERS = ("admin", "alice", "bob", "carol")


class NamedPrincipalTests(unittest.TestCase):
    async def setUp(self):
        self.service, bootstraps = await start_secure_broker(self, None, "--super-users", "User:admin")
        self.bootstrap = bootstraps["SASL_PLAINTEXT"]
        self.broker = self.service.getServiceNamed("broker")
        for user in USERS:
            await add_user(self.service.getServiceNamed("metadata"), user, f"{user}-secret")
        for topic in ("orders", "orders-eu", "payments"):
            await self.broker.topics.create(topic, 1, {})
        # Any group, for everyone: the consumers here read by assignment.
        await self.grant(allow(ResourceType.GROUP, "*", Operation.READ, principal="User:*"))

    def settings(self, user):
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": f"{user}-secret"}

    async def grant(self, bindings):
        """Create ``bindings`` as the super user, through the ACL API."""
        def create():
            admin = AdminClient(self.settings("admin"))
            return [result_or_error(f) for f in admin.create_acls([confluent_binding(b) for b in bindings]).values()]

        self.assertEqual(await in_thread(create), [None] * len(bindings))

    def deliver(self, user, topic):
        producer = Producer({**self.settings(user), "enable.idempotence": False, "message.timeout.ms": 5000})
        delivered = []
        producer.produce(topic, b"v", on_delivery=lambda error, message: delivered.append(error and error.code()))
        producer.flush(10)
        return delivered[0]

    def read(self, user, topic):
        """Read partition 0 from the start (no group); -> the first value, or the error code."""
        consumer = Consumer({**self.settings(user), "group.id": "unused", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            for _ in range(40):
                message = consumer.poll(0.25)
                if message is not None:
                    return message.error().code() if message.error() else message.value()
            return None
        finally:
            consumer.close()

    async def test_write_without_read(self):
        await self.grant(allow(ResourceType.TOPIC, "orders", Operation.WRITE, principal="User:alice"))
        self.assertIsNone(await in_thread(self.deliver, "alice", "orders"))
        self.assertEqual(await in_thread(self.read, "alice", "orders"), KafkaError.TOPIC_AUTHORIZATION_FAILED)
        self.assertEqual(await in_thread(self.read, "admin", "orders"), b"v")
        # Another user gets nothing from alice's ACL.
        self.assertEqual(await in_thread(self.deliver, "bob", "orders"), KafkaError.TOPIC_AUTHORIZATION_FAILED)

    async def test_deny_beats_allow(self):
        await self.grant([*allow(ResourceType.TOPIC, "*", Operation.ALL, principal="User:bob"),
                          *deny(ResourceType.TOPIC, "payments", Operation.READ, principal="User:bob")])
        self.assertIsNone(await in_thread(self.deliver, "bob", "payments"))
        self.assertEqual(await in_thread(self.read, "bob", "payments"), KafkaError.TOPIC_AUTHORIZATION_FAILED)
        self.assertIsNone(await in_thread(self.deliver, "bob", "orders"))
        self.assertEqual(await in_thread(self.read, "bob", "orders"), b"v")

    async def test_prefixed_acls(self):
        await self.grant(allow(ResourceType.TOPIC, "orders", Operation.READ, Operation.WRITE, principal="User:carol",
                               pattern_type=PatternType.PREFIXED))
        self.assertIsNone(await in_thread(self.deliver, "carol", "orders-eu"))
        self.assertEqual(await in_thread(self.read, "carol", "orders-eu"), b"v")
        self.assertEqual(await in_thread(self.deliver, "carol", "payments"), KafkaError.TOPIC_AUTHORIZATION_FAILED)

        def listed():
            admin = AdminClient(self.settings("carol"))
            return sorted(admin.list_topics(timeout=10).topics)

        self.assertEqual(await in_thread(listed), ["orders", "orders-eu"])

    async def test_only_the_super_user_administers(self):
        def as_alice():
            admin = AdminClient(self.settings("alice"))
            created = result_or_error(admin.create_topics([NewTopic("fresh", 1)])["fresh"])
            scram = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
                "mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"pw", b"salt")])
            scram_error = result_or_error(scram["mallory"])
            kafka_python = KafkaAdminClient(bootstrap_servers=self.bootstrap, security_protocol="SASL_PLAINTEXT",
                                            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                                            sasl_plain_password="alice-secret")
            try:
                kafka_python.describe_acls(kafka_python_filter())
            except ClusterAuthorizationFailedError:
                acls_refused = True
            else:
                acls_refused = False
            finally:
                kafka_python.close()
            return created.code(), scram_error.code(), acls_refused

        self.assertEqual(await in_thread(as_alice), (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                                      KafkaError.CLUSTER_AUTHORIZATION_FAILED, True))
        await self.grant([binding(ResourceType.CLUSTER, "kafka-cluster", Operation.CREATE, principal="User:alice")])

        def create_as_alice():
            admin = AdminClient(self.settings("alice"))
            return result_or_error(admin.create_topics([NewTopic("fresh", 1)])["fresh"])

        self.assertIsNone(await in_thread(create_as_alice))
        self.assertIn("fresh", self.broker.topics)

    async def test_a_user_quota_throttles_that_user(self):
        await self.broker.quotas.alter_client_quotas([((("user", "alice"),), {"producer_byte_rate": 2000.0})])
        await self.grant(allow(ResourceType.TOPIC, "orders", Operation.WRITE, principal="User:alice"))
        await self.grant(allow(ResourceType.TOPIC, "orders", Operation.WRITE, principal="User:bob"))

        def throttled(user):
            events = []
            producer = Producer({**self.settings(user), "linger.ms": 5, "batch.num.messages": 2,
                                 "throttle_cb": lambda event: events.append(event.throttle_time)})
            for _ in range(12):
                producer.produce("orders", b"x" * 4096)
                producer.poll(0)
            producer.flush(15)
            return bool(events)

        self.assertTrue(await in_thread(throttled, "alice"))
        self.assertFalse(await in_thread(throttled, "bob"))


