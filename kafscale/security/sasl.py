"""One connection's SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
against the SCRAM credentials in the metadata store. The handlers for
SaslHandshake and SaslAuthenticate drive it; the connection asks it who the
client is."""

import base64
import hmac
import secrets

from twisted.internet.threads import deferToThread

from kafscale.security.principal import user
from kafscale.security.scram import MECHANISMS, password_matches

ALL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
"""Every mechanism offered, in Kafka's default order of preference."""


class UnsupportedMechanism(Exception):
    """The client asked for a mechanism this listener does not offer."""


class IllegalSaslState(Exception):
    """A SaslHandshake or SaslAuthenticate out of turn."""


class AuthenticationFailed(Exception):
    """Wrong password, unknown user, or a malformed exchange. ``user`` is
    who the client claimed to be, where it said."""

    def __init__(self, message, user=None):
        super().__init__(message)
        self.user = user


class SaslAuthentication:
    """The SASL state of one connection: a SaslHandshake picks a mechanism
    among ``mechanisms``; SaslAuthenticate tokens then go through its
    exchange until it names the principal (:attr:`principal`), or fails, for
    good. ``credentials`` is the store of SCRAM credentials (an
    IScramCredentialStore)."""

    def __init__(self, mechanisms, credentials):
        self.mechanisms = tuple(mechanisms)
        self._credentials = credentials
        self.mechanism = None
        self.principal = None
        self.failed = False
        # After a SaslHandshake v0, tokens come as bare frames rather than
        # in SaslAuthenticate requests.
        self.bare_tokens = False
        self._exchange = None

    @property
    def complete(self):
        return self.principal is not None

    def handshake(self, mechanism, bare_tokens=False):
        """Choose ``mechanism``, its tokens then coming in bare frames
        (``bare_tokens``, SaslHandshake v0) or in SaslAuthenticate requests.
        Raises UnsupportedMechanism, IllegalSaslState (a second handshake)."""
        if self.mechanism is not None or self.failed:
            raise IllegalSaslState("SaslHandshake already received on this connection")
        if mechanism not in self.mechanisms:
            raise UnsupportedMechanism(f"mechanism {mechanism!r} is not enabled")
        self.mechanism = mechanism
        self.bare_tokens = bare_tokens
        self._exchange = _Plain(self._credentials) if mechanism == "PLAIN" else _Scram(mechanism, self._credentials)

    async def step(self, token):
        """Take the client's next token; -> the server's answer (bytes).
        Raises IllegalSaslState before a handshake or after the end,
        AuthenticationFailed (after which the connection is done)."""
        if self._exchange is None or self.complete or self.failed:
            raise IllegalSaslState("SaslAuthenticate without a SaslHandshake, or after authentication ended")
        try:
            answer, name = await self._exchange.step(bytes(token))
        except AuthenticationFailed:
            self.failed = True
            raise
        if name is not None:
            self.principal = user(name)
            self._exchange = None
        return answer


class _Plain:
    """RFC 4616: ``authzid NUL authcid NUL password``, checked against any of
    the user's SCRAM credentials."""

    def __init__(self, credentials):
        self._credentials = credentials

    async def step(self, token):
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("malformed PLAIN token")
        try:
            authzid, name, password = (part.decode() for part in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("PLAIN token is not UTF-8") from None
        if not name:
            raise AuthenticationFailed("PLAIN token without a user name")
        if authzid and authzid != name:
            raise AuthenticationFailed("authorization id differs from the user", name)
        stored = await self._credentials.scram_credentials(name)
        # The strongest credential is checked, so a PLAIN login costs what
        # one password check costs.
        credential = next((stored[m] for m in MECHANISMS if m in stored), None)
        if credential is None:
            raise AuthenticationFailed("unknown user", name)
        if not await deferToThread(password_matches, credential, password):
            raise AuthenticationFailed("wrong password", name)
        return b"", name


def _saslname(text):
    return text.replace("=2C", ",").replace("=3D", "=")


def _attributes(message):
    """``a=1,b=2`` -> {"a": "1", "b": "2"}; raises AuthenticationFailed."""
    try:
        return dict(item.split("=", 1) for item in message.split(","))
    except ValueError:
        raise AuthenticationFailed("malformed SCRAM message") from None


class _Scram:
    """RFC 5802, server side: client-first, then client-final.

    Written here rather than taken from scramp, whose server insists that
    the client-final nonce equal the server's, where librdkafka sends the
    client nonce again in front of it; like Kafka, the nonce is accepted
    when it ends with the server's (its proof covers what it sent)."""

    def __init__(self, mechanism, credentials):
        self._digest = MECHANISMS[mechanism]
        self._mechanism = mechanism
        self._credentials = credentials
        self._name = None
        self._credential = None
        self._gs2_header = None
        self._client_first_bare = None
        self._server_first = None
        self._nonce = None

    async def step(self, token):
        try:
            text = token.decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("SCRAM message is not UTF-8", self._name) from None
        if self._server_first is None:
            return await self._first(text), None
        return self._final(text), self._name

    async def _first(self, text):
        # gs2-header ("n,," or "y,,": no channel binding; no authzid other
        # than the user), then "n=NAME,r=NONCE[,extensions]".
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y"):
            raise AuthenticationFailed("SCRAM channel binding is not supported")
        attributes = _attributes(bare)
        if not attributes.get("n") or not attributes.get("r"):
            raise AuthenticationFailed("SCRAM client-first message without a user name or nonce")
        self._name = _saslname(attributes["n"])
        if authzid and authzid != "a=" + attributes["n"]:
            raise AuthenticationFailed("authorization id differs from the user", self._name)
        self._credential = (await self._credentials.scram_credentials(self._name)).get(self._mechanism)
        if self._credential is None:
            raise AuthenticationFailed(f"no {self._mechanism} credential", self._name)
        self._gs2_header = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = attributes["r"] + secrets.token_urlsafe(24)
        salt = base64.b64encode(self._credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._credential.iterations}"
        return self._server_first.encode()

    def _final(self, text):
        without_proof, _, proof = text.rpartition(",p=")
        attributes = _attributes(without_proof)
        if attributes.get("c") != base64.b64encode(self._gs2_header.encode()).decode():
            raise AuthenticationFailed("SCRAM channel binding does not match", self._name)
        if not attributes.get("r", "").endswith(self._nonce):
            raise AuthenticationFailed("SCRAM nonce does not match", self._name)
        message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        credential = self._credential
        signature = hmac.digest(credential.stored_key, message, self._digest)
        try:
            client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof, validate=True), signature, strict=True))
        except ValueError:
            raise AuthenticationFailed("malformed SCRAM proof", self._name) from None
        if not hmac.compare_digest(self._digest(client_key).digest(), credential.stored_key):
            raise AuthenticationFailed("wrong password", self._name)
        server_signature = hmac.digest(credential.server_key, message, self._digest)
        return b"v=" + base64.b64encode(server_signature)
