"""SCRAM credentials (RFC 5802 / 7677): what the metadata store keeps for a
user instead of the password, and how one is made from a password or from
the salted password AlterUserScramCredentials sends."""

import base64
import hashlib
import hmac
import os

from kafscale.metadata.interfaces import ScramCredential

MECHANISMS = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
"""The SCRAM mechanisms Kafka clients speak, and their hash."""

KAFKA_MECHANISM_TYPES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
"""Each mechanism's number in AlterUserScramCredentials and
DescribeUserScramCredentials."""

MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
"""Kafka's bounds on a credential's iteration count."""


class InvalidCredential(ValueError):
    """A mechanism that is not SCRAM's, or an iteration count out of bounds."""


def _check(mechanism, iterations):
    if mechanism not in MECHANISMS:
        raise InvalidCredential(f"unknown SCRAM mechanism {mechanism!r}")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise InvalidCredential(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")


def salted_password(mechanism, password, salt, iterations):
    """RFC 5802's Hi(password, salt, iterations). Costs ``iterations``
    rounds of the mechanism's hash: call it off the reactor."""
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism]().name, password.encode(), salt, iterations)


def credential_from_password(mechanism, password, iterations=MIN_ITERATIONS, salt=None):
    """-> the ScramCredential of ``password`` (with a new random salt unless
    one is given). Call it off the reactor (see salted_password)."""
    _check(mechanism, iterations)
    salt = os.urandom(32) if salt is None else salt
    return credential_from_salted_password(mechanism, salt, salted_password(mechanism, password, salt, iterations),
                                           iterations)


def credential_from_salted_password(mechanism, salt, salted_password, iterations):
    """-> the ScramCredential of a password the client salted and iterated
    itself (as AlterUserScramCredentials sends it)."""
    _check(mechanism, iterations)
    digest = MECHANISMS[mechanism]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    server_key = hmac.digest(salted_password, b"Server Key", digest)
    return ScramCredential(mechanism, bytes(salt), digest(client_key).digest(), server_key, iterations)


def password_matches(credential, password):
    """Whether ``password`` is the one ``credential`` was made from (for
    SASL/PLAIN). Costs the credential's iterations: call it off the
    reactor."""
    digest = MECHANISMS[credential.mechanism]
    salted = salted_password(credential.mechanism, password, credential.salt, credential.iterations)
    client_key = hmac.digest(salted, b"Client Key", digest)
    return hmac.compare_digest(digest(client_key).digest(), credential.stored_key)


class ScramClient:
    """RFC 5802, client side, for the broker's own connections to other
    brokers: :meth:`first` is the client-first message, :meth:`final` the
    client-final one for the server-first answer, :meth:`verify` checks the
    server-final one. Salting costs the server's iteration count: call
    :meth:`final` off the reactor. Raises InvalidCredential on a server
    answer that does not follow the exchange."""

    def __init__(self, mechanism, username, password, nonce=None):
        if mechanism not in MECHANISMS:
            raise InvalidCredential(f"unknown SCRAM mechanism {mechanism!r}")
        self._mechanism = mechanism
        self._digest = MECHANISMS[mechanism]
        self._password = password
        name = username.replace("=", "=3D").replace(",", "=2C")
        self._nonce = nonce or base64.b64encode(os.urandom(24)).decode()
        self._first_bare = f"n={name},r={self._nonce}"
        self._server_signature = None

    def first(self):
        return ("n,," + self._first_bare).encode()

    def final(self, server_first):
        text = server_first.decode()
        try:
            attributes = dict(item.split("=", 1) for item in text.split(","))
            nonce, salt, iterations = attributes["r"], base64.b64decode(attributes["s"]), int(attributes["i"])
        except (KeyError, ValueError) as e:
            raise InvalidCredential(f"malformed SCRAM server-first message ({e})") from None
        if not nonce.startswith(self._nonce) or nonce == self._nonce:
            raise InvalidCredential("SCRAM server nonce does not extend the client's")
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise InvalidCredential(f"SCRAM iteration count {iterations} out of bounds")
        salted = salted_password(self._mechanism, self._password, salt, iterations)
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        message = f"{self._first_bare},{text},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", self._digest)
        signature = hmac.digest(self._digest(client_key).digest(), message, self._digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = hmac.digest(hmac.digest(salted, b"Server Key", self._digest), message, self._digest)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        """Raises InvalidCredential unless the server proved it knows the
        credential too."""
        expected = b"v=" + base64.b64encode(self._server_signature or b"")
        if self._server_signature is None or not hmac.compare_digest(bytes(server_final), expected):
            raise InvalidCredential("SCRAM server signature does not match")
