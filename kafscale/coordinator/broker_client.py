"""Requests from one broker to another over the Kafka protocol: the
transaction coordinator sends WriteTxnMarkers to the owners of a
transaction's partitions. One connection per broker address, requests
pipelined on it, each answered by its correlation id."""

import struct

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from kafscale.log import logger
from kafscale.protocol.messages import decode_response_header, encode_request, response_codec

log = logger("kafscale.coordinator.broker_client")

CLIENT_ID = "kafscale-broker"


class BrokerUnreachable(Exception):
    """The other broker could not be reached or did not answer in time."""


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
    """Sends requests to other brokers (``reactor`` connects and times)."""

    def __init__(self, reactor, timeout=10.0):
        self.reactor = reactor
        self.timeout = timeout
        self._connections = {}  # (host, port) -> Deferred firing with a _Connection

    async def request(self, host, port, api_key, version, body):
        """-> the decoded answer. Raises BrokerUnreachable."""
        connection = await self._connection(host, port)
        answer = connection.request(api_key, version, body)
        answer.addTimeout(self.timeout, self.reactor)
        try:
            return await answer
        except TimeoutError:
            connection.transport.loseConnection()
            raise BrokerUnreachable(f"{host}:{port} did not answer within {self.timeout} s") from None

    async def _connection(self, host, port):
        connecting = self._connections.get((host, port))
        if connecting is None:
            endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.timeout)
            connecting = connectProtocol(endpoint, _Connection())
            self._connections[host, port] = connecting
        try:
            connection = await _shared(connecting)
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
