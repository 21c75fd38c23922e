"""Requests from one broker to another over the Kafka protocol: the
transaction coordinator sends WriteTxnMarkers to the owners of a
transaction's partitions. One connection per broker address, requests
pipelined on it, each answered by its correlation id. The connection speaks
the inter-broker listener's security protocol: TLS (checking the peer's
certificate against the host it advertises, presenting the broker's own)
and SASL (SaslHandshake, then SaslAuthenticate) before any request."""

import struct
from dataclasses import dataclass

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThread

from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey, decode_response_header, encode_request, response_codec
from kafscale.security.scram import InvalidCredential, ScramClient

log = logger("kafscale.coordinator.broker_client")

CLIENT_ID = "kafscale-broker"


class BrokerUnreachable(Exception):
    """The other broker could not be reached, did not answer in time, or
    refused this broker's authentication."""


@dataclass(frozen=True, slots=True)
class InterBrokerSecurity:
    """How this broker connects to another: ``tls`` (a ClientTLS, or None
    for plain TCP), and with a SASL ``mechanism`` (PLAIN, SCRAM-SHA-256,
    SCRAM-SHA-512; None: no SASL) the ``username`` and ``password`` it
    authenticates with."""

    tls: object = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None


SASL_HANDSHAKE_VERSION = 1
SASL_AUTHENTICATE_VERSION = 2


class _Connection(Protocol):
    def __init__(self):
        self._buffer = bytearray()
        self._waiting = {}  # correlation id -> (api key, version, Deferred)
        self._next_id = 0
        self.closed = False

    def request(self, api_key, version, body):
        self._next_id += 1
        answer = Deferred()
        self._waiting[self._next_id] = (api_key, version, answer)
        self.transport.write(encode_request(api_key, version, self._next_id, CLIENT_ID, body))
        return answer

    def dataReceived(self, data):
        self._buffer += data
        while len(self._buffer) >= 4:
            (size,) = struct.unpack_from(">i", self._buffer)
            if len(self._buffer) < 4 + size:
                return
            frame = bytes(self._buffer[4:4 + size])
            del self._buffer[:4 + size]
            self._answer(frame)

    def _answer(self, frame):
        (correlation_id,) = struct.unpack_from(">i", frame)
        waiting = self._waiting.pop(correlation_id, None)
        if waiting is None:
            return
        api_key, version, answer = waiting
        try:
            _, offset = decode_response_header(frame, api_key, version)
            body, _ = response_codec(api_key, version).decode(frame, offset)
        except Exception as error:
            answer.errback(BrokerUnreachable(f"undecodable answer: {error}"))
            self.transport.loseConnection()
            return
        answer.callback(body)

    def connectionLost(self, reason):
        self.closed = True
        waiting, self._waiting = self._waiting, {}
        for _, _, answer in waiting.values():
            answer.errback(BrokerUnreachable(f"connection lost: {reason.value}"))


class BrokerClient:
    """Sends requests to other brokers (``reactor`` connects and times),
    over connections secured as ``security`` (an InterBrokerSecurity) says."""

    def __init__(self, reactor, timeout=10.0, security=InterBrokerSecurity()):
        self.reactor = reactor
        self.timeout = timeout
        self.security = security
        self._connections = {}  # (host, port) -> Deferred firing with a _Connection

    async def request(self, host, port, api_key, version, body):
        """-> the decoded answer. Raises BrokerUnreachable."""
        connection = await self._connection(host, port)
        return await self._request(connection, host, port, api_key, version, body)

    async def _request(self, connection, host, port, api_key, version, body):
        answer = connection.request(api_key, version, body)
        answer.addTimeout(self.timeout, self.reactor)
        try:
            return await answer
        except TimeoutError:
            connection.transport.loseConnection()
            raise BrokerUnreachable(f"{host}:{port} did not answer within {self.timeout} s") from None

    async def _connect(self, host, port):
        """-> a new connection to ``host``:``port``, authenticated."""
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.timeout)
        if self.security.tls is not None:
            endpoint = wrapClientTLS(self.security.tls.creatorForNetloc(host.encode("ascii"), port), endpoint)
        connection = await connectProtocol(endpoint, _Connection())
        if self.security.mechanism is not None:
            try:
                await self._authenticate(connection, host, port)
            except Exception:
                connection.transport.loseConnection()
                raise
        return connection

    async def _authenticate(self, connection, host, port):
        mechanism = self.security.mechanism
        answer = await self._request(connection, host, port, ApiKey.SASL_HANDSHAKE, SASL_HANDSHAKE_VERSION,
                                     {"mechanism": mechanism})
        if answer["error_code"] != ErrorCode.NONE:
            raise BrokerUnreachable(f"{host}:{port} does not offer SASL {mechanism}: error {answer['error_code']}")

        async def step(token):
            answer = await self._request(connection, host, port, ApiKey.SASL_AUTHENTICATE,
                                         SASL_AUTHENTICATE_VERSION, {"auth_bytes": token})
            if answer["error_code"] != ErrorCode.NONE:
                log.error("{host}:{port} refused this broker's SASL {mechanism} authentication as {user}: {message}",
                          host=host, port=port, mechanism=mechanism, user=self.security.username,
                          message=answer["error_message"])
                raise BrokerUnreachable(f"{host}:{port} refused the authentication: {answer['error_message']}")
            return answer["auth_bytes"]

        if mechanism == "PLAIN":
            await step(f"\0{self.security.username}\0{self.security.password}".encode())
            return
        scram = ScramClient(mechanism, self.security.username, self.security.password)
        try:
            server_first = await step(scram.first())
            server_final = await step(await deferToThread(scram.final, server_first))
            scram.verify(server_final)
        except InvalidCredential as error:
            raise BrokerUnreachable(f"{host}:{port}: {error}") from None

    async def _connection(self, host, port):
        connecting = self._connections.get((host, port))
        if connecting is None:
            connecting = Deferred.fromCoroutine(self._connect(host, port))
            self._connections[host, port] = connecting
        try:
            connection = await _shared(connecting)
        except BrokerUnreachable:
            self._connections.pop((host, port), None)
            raise
        except Exception as error:
            self._connections.pop((host, port), None)
            raise BrokerUnreachable(f"cannot connect to {host}:{port}: {error}") from None
        if connection is None:
            raise BrokerUnreachable(f"cannot connect to {host}:{port}")
        if connection.closed:
            self._connections.pop((host, port), None)
            return await self._connection(host, port)
        return connection

    def close(self):
        for connecting in self._connections.values():
            connecting.addCallback(lambda connection: connection.transport.loseConnection())
            connecting.addErrback(lambda _: None)
        self._connections = {}


def _shared(connecting):
    """A Deferred with ``connecting``'s result that leaves it for others."""
    copy = Deferred()

    def passed(result):
        copy.callback(result)
        return result

    def failed(failure):
        # Later callers find None and the connection gone from the table.
        copy.errback(failure)
        return None

    connecting.addCallbacks(passed, failed)
    return copy
