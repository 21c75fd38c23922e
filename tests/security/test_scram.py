"""The SCRAM client a broker authenticates to other brokers with, against
the listeners' SCRAM server side: the right password is accepted and the
server's signature checked; a wrong one is refused."""

from twisted.trial import unittest

from kafscale.security.sasl import AuthenticationFailed, SaslAuthentication
from kafscale.security.scram import InvalidCredential, ScramClient, credential_from_password


class OneUser:
    """An IScramCredentialStore holding one user's credentials."""

    def __init__(self, name, credentials):
        self.name = name
        self.credentials = {c.mechanism: c for c in credentials}

    async def scram_credentials(self, name):
        return self.credentials if name == self.name else {}


class ScramClientTests(unittest.TestCase):
    def setUp(self):
        self.store = OneUser("broker,1", [credential_from_password(m, "secret")
                                          for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")])

    async def exchange(self, mechanism, password):
        server = SaslAuthentication([mechanism], self.store)
        server.handshake(mechanism)
        client = ScramClient(mechanism, "broker,1", password)
        server_first = await server.step(client.first())
        server_final = await server.step(client.final(server_first))
        client.verify(server_final)
        return server.principal

    async def test_each_mechanism_authenticates(self):
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            self.assertEqual(await self.exchange(mechanism, "secret"), "User:broker,1")

    async def test_a_wrong_password_is_refused(self):
        with self.assertRaises(AuthenticationFailed):
            await self.exchange("SCRAM-SHA-512", "wrong")

    async def test_a_server_that_does_not_know_the_credential_is_caught(self):
        server = SaslAuthentication(["SCRAM-SHA-256"], self.store)
        server.handshake("SCRAM-SHA-256")
        client = ScramClient("SCRAM-SHA-256", "broker,1", "secret")
        client.final(await server.step(client.first()))
        self.assertRaises(InvalidCredential, client.verify, b"v=" + b"A" * 44)
        self.assertRaises(InvalidCredential, ScramClient("SCRAM-SHA-256", "b", "p").final, b"r=other,s=AAAA,i=4096")
