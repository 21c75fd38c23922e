"""The broker's own etcd connection secured: https with client
certificates, and etcd's users (a token, logged in again when etcd stops
taking it)."""

import json
import ssl
import urllib.request

from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kafscale.metadata.interfaces import MetadataError
from kafscale.stores import EtcdSecurity, metadata_store
from tests.support.brokers import in_thread
from tests.support.clients import produce
from tests.support.etcd_server import EtcdServer, etcd_binary, missing_reason
from tests.support.tls import make_tls, start_secure_broker


def enable_auth(server, context, password):
    """Make etcd's root user and switch authentication on."""
    for path, body in (("/v3/auth/role/add", {"name": "root"}),
                       ("/v3/auth/user/add", {"name": "root", "password": password}),
                       ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
                       ("/v3/auth/enable", {})):
        request = urllib.request.Request(server.endpoint + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            reply.read()


class SecuredEtcdTests(unittest.TestCase):
    async def setUp(self):
        reason = missing_reason("3.5")
        if reason:
            raise unittest.SkipTest(reason)
        self.ca, self.untrusted = make_tls(self)
        cert, key = self.ca.issue("etcd", server=True)
        self.server = EtcdServer(etcd_binary("3.5"), tls=(cert, key, self.ca.ca_file))
        await deferToThread(self.server.start)
        self.addCleanup(self.server.close)
        # etcd's JSON gateway refuses a client certificate with a common
        # name once its authentication is on.
        self.client_cert, self.client_key = self.ca.issue("kafscale", without_common_name=True)
        context = ssl.create_default_context(cafile=self.ca.ca_file)
        context.load_cert_chain(self.client_cert, self.client_key)
        await deferToThread(enable_auth, self.server, context, "root-secret")
        self.security = EtcdSecurity(self.ca.ca_file, self.client_cert, self.client_key, "root", "root-secret")

    def store(self, security):
        store = metadata_store(data_dir=self.mktemp(), etcd=self.server.endpoint, cluster_id="secure",
                               timeout=10, watched=(), etcd_security=security)
        store.startService()
        self.addCleanup(store.stopService)
        return store

    async def test_tls_client_certificate_and_password(self):
        store = self.store(self.security)
        info = await store.create_topic("events", 2)
        self.assertEqual(await store.topics(), {"events": info})
        # A token etcd no longer takes is replaced by a new login.
        store.client._token = "expired.token"
        self.assertEqual(await store.topics(), {"events": info})

    async def test_refused_without_the_password_a_client_certificate_or_a_trusted_ca(self):
        other_cert, other_key = self.untrusted.issue("intruder", without_common_name=True)
        for security in (EtcdSecurity(self.ca.ca_file, self.client_cert, self.client_key, "root", "wrong"),
                         EtcdSecurity(self.ca.ca_file, self.client_cert, self.client_key),
                         EtcdSecurity(self.ca.ca_file, other_cert, other_key, "root", "root-secret"),
                         EtcdSecurity(self.untrusted.ca_file, self.client_cert, self.client_key, "root",
                                      "root-secret")):
            with self.assertRaises(MetadataError):
                await self.store(security).topics()

    async def test_a_broker_on_the_secured_etcd(self):
        _, bootstraps = await start_secure_broker(
            self, None, "--etcd", self.server.endpoint, "--cluster-id", "secure-broker",
            "--etcd-ca", self.ca.ca_file, "--etcd-cert", self.client_cert, "--etcd-key", self.client_key,
            "--etcd-user", "root", "--etcd-password", "root-secret")
        self.assertEqual(await in_thread(produce, bootstraps["PLAINTEXT"], "t", [(None, b"x", None, 0)]), [(0, 0)])
