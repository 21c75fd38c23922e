"""SASL over real TLS with real clients: confluent-kafka, kafka-python,
aiokafka and kcat authenticate with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
against credentials in the metadata store; wrong passwords and unknown
users are refused after the delay and logged; before authenticating a
connection may only ask ApiVersions, SaslHandshake and SaslAuthenticate."""

import asyncio
import os
import shutil
import time

from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.clients import consume, produce
from tests.support.tls import add_user, make_tls, start_secure_broker
from tests.support.waiting import eventually
from tests.support.wire import Connection

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SaslClientsTests(unittest.TestCase):
    async def setUp(self):
        self.ca, self.untrusted = make_tls(self)
        self.service, self.bootstraps = await start_secure_broker(
            self, self.ca, "--failed-authentication-delay-ms", "300")
        self.metadata = self.service.getServiceNamed("metadata")
        await add_user(self.metadata, "alice", "alice-secret")

    def confluent(self, mechanism, user="alice", password="alice-secret"):
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism, "sasl.username": user,
                "sasl.password": password, "ssl.ca.location": self.ca.ca_file}

    async def test_confluent_kafka_produces_and_consumes_with_each_mechanism(self):
        bootstrap = self.bootstraps["SASL_SSL"]
        for mechanism in MECHANISMS:
            settings = self.confluent(mechanism)
            written = await in_thread(produce, bootstrap, f"t-{mechanism}", [(b"k", mechanism.encode(), None, 0)],
                                      **settings)
            self.assertEqual(written, [(0, 0)])
            read = await in_thread(consume, bootstrap, f"t-{mechanism}", [0], 1, **settings)
            self.assertEqual([m.value() for m in read], [mechanism.encode()])

    async def test_kafka_python_with_each_mechanism(self):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        def round_trip(mechanism):
            settings = dict(bootstrap_servers=self.bootstraps["SASL_SSL"], security_protocol="SASL_SSL",
                            sasl_mechanism=mechanism, sasl_plain_username="alice",
                            sasl_plain_password="alice-secret", ssl_cafile=self.ca.ca_file)
            producer = KafkaProducer(**settings)
            try:
                producer.send(f"kp-{mechanism}", b"hello").get(timeout=20)
            finally:
                producer.close()
            # Assigned, not subscribed: no group to wait for.
            consumer = KafkaConsumer(auto_offset_reset="earliest", **settings)
            try:
                consumer.assign([TopicPartition(f"kp-{mechanism}", 0)])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    for records in consumer.poll(timeout_ms=500).values():
                        return [record.value for record in records][:1]
                return []
            finally:
                consumer.close()

        for mechanism in MECHANISMS:
            self.assertEqual(await in_thread(round_trip, mechanism), [b"hello"])

    async def test_aiokafka_with_each_mechanism(self):
        from aiokafka import AIOKafkaProducer
        from aiokafka.helpers import create_ssl_context

        async def send(mechanism):
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstraps["SASL_SSL"], security_protocol="SASL_SSL",
                sasl_mechanism=mechanism, sasl_plain_username="alice", sasl_plain_password="alice-secret",
                ssl_context=create_ssl_context(cafile=self.ca.ca_file))
            await producer.start()
            try:
                return (await producer.send_and_wait(f"aio-{mechanism}", b"hello")).offset
            finally:
                await producer.stop()

        for mechanism in MECHANISMS:
            self.assertEqual(await in_thread(asyncio.run, send(mechanism)), 0)

    async def test_kcat_with_each_mechanism(self):
        kcat = shutil.which("kcat")
        if kcat is None:
            raise unittest.SkipTest("kcat is not installed (Debian package kcat)")
        for mechanism in MECHANISMS:
            settings = [f"-X{key}={value}" for key, value in self.confluent(mechanism).items()]
            out, err, code = await getProcessOutputAndValue(
                kcat, ["-L", "-b", self.bootstraps["SASL_SSL"], "-m", "10", *settings], env=os.environ)
            self.assertEqual(code, 0, err)
            self.assertIn(f"broker 0 at {self.bootstraps['SASL_SSL']}".encode(), out)

    async def test_wrong_password_and_unknown_user_are_refused_and_logged(self):
        from confluent_kafka import Producer

        def refused(mechanism, user, password):
            errors = []
            producer = Producer({"bootstrap.servers": self.bootstraps["SASL_SSL"], "error_cb": errors.append,
                                 **self.confluent(mechanism, user, password)})
            deadline = time.monotonic() + 10
            while not any("Authentication failed" in str(e) for e in errors) and time.monotonic() < deadline:
                producer.poll(0.1)
            return [str(e) for e in errors]

        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        for mechanism in MECHANISMS:
            for user, password in (("alice", "wrong"), ("mallory", "alice-secret")):
                errors = await in_thread(refused, mechanism, user, password)
                self.assertTrue(any("Authentication failed" in error for error in errors), (mechanism, user, errors))
        failures = [event for event in logged if event.get("log_format", "").startswith("failed authentication")]
        self.assertGreaterEqual(len(failures), 6)
        self.assertEqual({event["client"] for event in failures}, {"127.0.0.1"})
        self.assertEqual({event["user"] for event in failures}, {"alice", "mallory"})
        await self.connections_closed()

    async def connections_closed(self):
        """Wait for the refused clients' connections to be gone (they are
        answered only after the delay)."""
        listeners = self.service.getServiceNamed("listener").listeners
        await eventually(lambda: not any(factory.connections for _, _, factory in listeners))

    async def test_a_failed_authentication_is_answered_after_the_delay_then_closed(self):
        def attempt():
            connection = Connection(self.bootstraps["SASL_PLAINTEXT"])
            try:
                handshake = connection.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
                started = time.monotonic()
                answer = connection.request(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0wrong"})
                return handshake, answer, time.monotonic() - started, connection.closed_by_peer()
            finally:
                connection.close()

        handshake, answer, waited, closed = await in_thread(attempt)
        self.assertEqual(handshake["error_code"], ErrorCode.NONE)
        self.assertEqual(handshake["mechanisms"], list(("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")))
        self.assertEqual(answer["error_code"], ErrorCode.SASL_AUTHENTICATION_FAILED)
        self.assertGreaterEqual(waited, 0.3)
        self.assertTrue(closed)

    async def test_sasl_handshake_v0_then_bare_tokens(self):
        def attempt(password):
            connection = Connection(self.bootstraps["SASL_PLAINTEXT"])
            try:
                connection.request(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})
                token = f"\0alice\0{password}".encode()
                connection.send_raw(len(token).to_bytes(4, "big") + token)
                answer = connection.read_frame()
                if answer is None:
                    return None
                return connection.request(ApiKey.METADATA, 1, {"topics": []})["brokers"]
            finally:
                connection.close()

        self.assertEqual(len(await in_thread(attempt, "alice-secret")), 1)
        self.assertIsNone(await in_thread(attempt, "wrong"))

    async def test_only_versions_and_sasl_before_authentication(self):
        def before_authenticating(api_key, version, body):
            connection = Connection(self.bootstraps["SASL_PLAINTEXT"])
            try:
                versions = connection.request(ApiKey.API_VERSIONS, 3, {"client_software_name": "t"})
                connection.send(api_key, version, body)
                return versions["error_code"], connection.closed_by_peer()
            finally:
                connection.close()

        for api_key, version, body in ((ApiKey.METADATA, 1, {"topics": []}),
                                       (ApiKey.CREATE_TOPICS, 2, {"topics": [], "timeout_ms": 1000}),
                                       (ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": None})):
            self.assertEqual(await in_thread(before_authenticating, api_key, version, body),
                             (ErrorCode.NONE, True))

    async def test_a_large_frame_before_authentication_closes_the_connection(self):
        def send_large():
            connection = Connection(self.bootstraps["SASL_PLAINTEXT"])
            try:
                connection.send_raw((1 << 20).to_bytes(4, "big") + b"\0" * 1024)
                return connection.closed_by_peer()
            finally:
                connection.close()

        self.assertTrue(await in_thread(send_large))

    async def test_plaintext_listener_alongside_is_anonymous_and_open(self):
        written = await in_thread(produce, self.bootstraps["PLAINTEXT"], "open", [(None, b"x", None, 0)])
        self.assertEqual(written, [(0, 0)])


class ScramCredentialsAdminTests(unittest.TestCase):
    """AlterUserScramCredentials and DescribeUserScramCredentials through
    confluent-kafka's admin client: a user it creates can log in."""

    async def setUp(self):
        self.service, self.bootstraps = await start_secure_broker(self)
        await add_user(self.service.getServiceNamed("metadata"), "admin", "admin-secret")

    def admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstraps["SASL_PLAINTEXT"], "security.protocol": "SASL_PLAINTEXT",
                            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                            "sasl.password": "admin-secret"})

    async def test_created_user_logs_in_then_deleted_user_cannot(self):
        from confluent_kafka.admin import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialDeletion,
            UserScramCredentialUpsertion,
        )

        def alter(changes):
            admin = self.admin()
            return {user: future.result(20) for user, future in admin.alter_user_scram_credentials(changes).items()}

        def describe(users=None):
            admin = self.admin()
            return admin.describe_user_scram_credentials(users).result(20)

        await in_thread(alter, [UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"bob-secret", b"salt-of-bob")])
        described = await in_thread(describe)
        self.assertEqual(sorted(described), ["admin", "bob"])
        self.assertEqual([(info.mechanism, info.iterations) for info in described["bob"].scram_credential_infos],
                         [(ScramMechanism.SCRAM_SHA_256, 8192)])
        bob = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "bob",
               "sasl.password": "bob-secret"}
        self.assertEqual(await in_thread(produce, self.bootstraps["SASL_PLAINTEXT"], "bobs", [(None, b"x", None, 0)],
                                         **bob), [(0, 0)])
        # PLAIN is checked against the SCRAM credential too.
        plain = dict(bob, **{"sasl.mechanism": "PLAIN"})
        self.assertEqual(await in_thread(produce, self.bootstraps["SASL_PLAINTEXT"], "bobs", [(None, b"y", None, 0)],
                                         **plain), [(0, 1)])
        await in_thread(alter, [UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)])
        self.assertEqual(sorted(await in_thread(describe)), ["admin"])

    async def test_refusals(self):
        from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion
        from confluent_kafka import KafkaException

        def delete_missing():
            admin = self.admin()
            futures = admin.alter_user_scram_credentials(
                [UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_512)])
            try:
                futures["nobody"].result(20)
            except KafkaException as e:
                return e.args[0].code()

        def describe_missing():
            admin = self.admin()
            try:
                admin.describe_user_scram_credentials(["nobody"])["nobody"].result(20)
            except KafkaException as e:
                return e.args[0].code()

        self.assertEqual(await in_thread(delete_missing), ErrorCode.RESOURCE_NOT_FOUND)
        self.assertEqual(await in_thread(describe_missing), ErrorCode.RESOURCE_NOT_FOUND)
