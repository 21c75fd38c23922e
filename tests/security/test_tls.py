"""TLS listeners with real clients: mTLS names the principal from the
client certificate; untrusted and expired certificates are refused; a
certificate replaced on disk is served to new connections after SIGHUP."""

import asyncio
import os
import shutil
import signal
import socket
import ssl

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from kafscale.security.principal import SubjectMapping
from tests.support.brokers import in_thread
from tests.support.clients import produce
from tests.support.tls import make_tls, start_secure_broker
from tests.support.waiting import eventually


def served_certificate_subject(bootstrap, ca_file):
    host, port = bootstrap.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]


class MutualTLSTests(unittest.TestCase):
    async def setUp(self):
        self.ca, self.untrusted = make_tls(self)
        self.service, self.bootstraps = await start_secure_broker(
            self, self.ca, "--tls-client-auth", "required",
            "--tls-principal-mapping-rules", "RULE:^CN=([^,]*),O=.*$/$1/L,DEFAULT")
        self.principals = []
        for _, _, factory in self.service.getServiceNamed("listener").listeners:
            factory.buildProtocol = self.recording(factory.buildProtocol)

    def recording(self, build):
        def buildProtocol(addr):
            protocol = build(addr)
            if protocol is not None:
                handshake = protocol.handshakeCompleted

                def completed():
                    handshake()
                    self.principals.append(protocol.principal)

                protocol.handshakeCompleted = completed
            return protocol
        return buildProtocol

    def client(self, cert, key):
        return {"security.protocol": "SSL", "ssl.ca.location": self.ca.ca_file, "ssl.certificate.location": cert,
                "ssl.key.location": key}

    async def test_confluent_kafka_with_a_client_certificate_is_its_subject(self):
        cert, key = self.ca.issue("Alice")
        written = await in_thread(produce, self.bootstraps["SSL"], "mtls", [(None, b"x", None, 0)],
                                  **self.client(cert, key))
        self.assertEqual(written, [(0, 0)])
        self.assertIn("User:alice", self.principals)

    async def test_kafka_python_with_a_client_certificate(self):
        from kafka import KafkaProducer

        cert, key = self.ca.issue("Kafka-Python")

        def send():
            producer = KafkaProducer(bootstrap_servers=self.bootstraps["SSL"], security_protocol="SSL",
                                     ssl_cafile=self.ca.ca_file, ssl_certfile=cert, ssl_keyfile=key)
            try:
                return producer.send("mtls-kafka-python", b"x").get(timeout=30).offset
            finally:
                producer.close()

        self.assertEqual(await in_thread(send), 0)
        self.assertIn("User:kafka-python", self.principals)

    async def test_aiokafka_with_a_client_certificate(self):
        from aiokafka import AIOKafkaProducer
        from aiokafka.helpers import create_ssl_context

        cert, key = self.ca.issue("AIOKafka")

        async def send():
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstraps["SSL"], security_protocol="SSL",
                ssl_context=create_ssl_context(cafile=self.ca.ca_file, certfile=cert, keyfile=key))
            await producer.start()
            try:
                return (await producer.send_and_wait("mtls-aiokafka", b"x")).offset
            finally:
                await producer.stop()

        self.assertEqual(await in_thread(asyncio.run, send()), 0)
        self.assertIn("User:aiokafka", self.principals)

    async def test_kcat_with_a_client_certificate(self):
        kcat = shutil.which("kcat")
        if kcat is None:
            raise unittest.SkipTest("kcat is not installed (Debian package kcat)")
        cert, key = self.ca.issue("kcat-user")
        settings = [f"-X{k}={v}" for k, v in self.client(cert, key).items()]
        out, err, code = await getProcessOutputAndValue(kcat, ["-L", "-b", self.bootstraps["SSL"], "-m", "10",
                                                               *settings], env=os.environ)
        self.assertEqual(code, 0, err)
        self.assertIn("User:kcat-user", self.principals)

    async def test_untrusted_expired_and_missing_certificates_are_refused(self):
        untrusted = self.untrusted.issue("Mallory")
        expired = self.ca.issue("Alice", expired=True)

        def handshake(cert_and_key):
            host, port = self.bootstraps["SSL"].rsplit(":", 1)
            context = ssl.create_default_context(cafile=self.ca.ca_file)
            if cert_and_key:
                context.load_cert_chain(*cert_and_key)
            try:
                with socket.create_connection((host, int(port)), timeout=10) as raw:
                    with context.wrap_socket(raw, server_hostname=host) as tls:
                        # TLS 1.3 reports the refusal of a client
                        # certificate on the first read.
                        tls.sendall(b"\0\0\0\0")
                        return tls.recv(1) != b""
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                return False

        for refused in (untrusted, expired, None):
            self.assertFalse(await in_thread(handshake, refused), refused)
        self.assertEqual(self.principals, [])


class CertificateReloadTests(unittest.TestCase):
    async def setUp(self):
        self.ca, _ = make_tls(self)
        self.service, self.bootstraps = await start_secure_broker(self, self.ca)

    async def test_sighup_serves_the_new_certificate_to_new_connections(self):
        self.assertEqual(await in_thread(served_certificate_subject, self.bootstraps["SSL"], self.ca.ca_file),
                         "broker")
        cert, key = self.ca.issue("rotated", server=True)
        shutil.copy(cert, os.path.join(self.ca.directory, "broker.pem"))
        shutil.copy(key, os.path.join(self.ca.directory, "broker.key"))
        os.kill(os.getpid(), signal.SIGHUP)

        async def rotated():
            return await in_thread(served_certificate_subject, self.bootstraps["SSL"], self.ca.ca_file) == "rotated"

        await eventually(rotated, what="the rotated certificate served")

    async def test_a_broken_certificate_file_keeps_the_current_one(self):
        with open(os.path.join(self.ca.directory, "broker.key"), "w") as f:
            f.write("not a key")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(await in_thread(served_certificate_subject, self.bootstraps["SASL_SSL"], self.ca.ca_file),
                         "broker")


class SubjectMappingTests(unittest.TestCase):
    def test_rules_in_order_then_default(self):
        mapping = SubjectMapping("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=([^,]*),O=(.*)$/$1@$2/U,DEFAULT")
        self.assertEqual(mapping.principal("CN=svc,OU=ServiceUsers,O=Example"), "User:svc")
        self.assertEqual(mapping.principal("CN=bob,O=example"), "User:BOB@EXAMPLE")
        self.assertEqual(mapping.principal("O=Example"), "User:O=Example")

    def test_no_matching_rule_and_bad_rules(self):
        with self.assertRaises(ValueError):
            SubjectMapping("RULE:^CN=(.*)$/$1/").principal("O=Example")
        for bad in ("RULE:nope", "DEFAULT,junk", ""):
            with self.assertRaises(ValueError):
                SubjectMapping(bad)
