"""One Kafka client connection: size-prefixed frames in, responses out in
request order, however the handlers interleave."""

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from kafscale.handlers.dispatch import HANDLERS, Request, unsupported_version_response
from kafscale.log import logger
from kafscale.protocol.messages import (
    ApiKey,
    UnsupportedVersion,
    decode_request_header,
    encode_response,
    request_codec,
)

log = logger("kafscale.server")

_WAITING = object()


class KafkaProtocol(Protocol):
    """Reads frames, dispatches each to its handler at once (so a slow fetch
    does not hold up a heartbeat's processing), and writes the answers in
    the order the requests came, as Kafka clients require.

    Memory per connection is bounded: a frame larger than the maximum closes
    the connection before its body is read, and reading pauses while
    ``max_in_flight`` requests await their handlers.
    """

    max_in_flight = 100

    def __init__(self, broker, max_request_size):
        self.broker = broker
        self.max_request_size = max_request_size
        self._buffer = bytearray()
        self._frame_size = None
        self._slots = deque()
        self._paused = False
        self._closed = False
        self._closing = False

    def connectionMade(self):
        # Answers are whole frames written at once: Nagle would only hold
        # the last segment of one back for an ACK, as Kafka brokers know.
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        peer = self.transport.getPeer()
        self.client_host = getattr(peer, "host", str(peer))
        self.factory.connections.add(self)

    def connectionLost(self, reason):
        self._closed = True
        self._slots.clear()
        self.factory.connections.discard(self)

    def close_when_answered(self):
        """Take no more requests; close once the pending ones are answered."""
        self._closing = True
        self._flush()

    def dataReceived(self, data):
        if self._closing:
            return
        self._buffer += data
        buffer = self._buffer
        position = 0
        while not self._closed:
            if self._frame_size is None:
                if len(buffer) - position < 4:
                    break
                size = int.from_bytes(buffer[position : position + 4], "big", signed=True)
                position += 4
                if size < 0 or size > self.max_request_size:
                    self._drop(f"frame size {size} outside 0..{self.max_request_size}")
                    return
                self._frame_size = size
            if len(buffer) - position < self._frame_size:
                break
            end = position + self._frame_size
            with memoryview(buffer) as view:
                frame = bytes(view[position:end])
            position = end
            self._frame_size = None
            self._dispatch(frame)
        if not self._closed:
            del buffer[:position]

    def _drop(self, why):
        log.warn("closing connection from {client}: {why}", client=self.client_host, why=why)
        self._closed = True
        self._buffer = bytearray()
        self.transport.abortConnection()

    def _dispatch(self, frame):
        view = memoryview(frame)
        try:
            header = decode_request_header(view)
        except UnsupportedVersion as e:
            if e.api_key == ApiKey.API_VERSIONS:
                self._answer_now(unsupported_version_response(e.correlation_id))
            else:
                self._drop(f"unsupported API key {e.api_key} version {e.api_version}")
            return
        except Exception as e:
            self._drop(f"undecodable request header ({e!r})")
            return
        handler = HANDLERS.get(header.api_key)
        if handler is None or not handler.min_version <= header.api_version <= handler.max_version:
            if header.api_key == ApiKey.API_VERSIONS:
                self._answer_now(unsupported_version_response(header.correlation_id))
            else:
                self._drop(f"unsupported API key {header.api_key} version {header.api_version}")
            return
        try:
            body, _ = request_codec(header.api_key, header.api_version).decode(view, header.body_offset)
        except Exception as e:
            self._drop(f"undecodable {ApiKey(header.api_key).name} v{header.api_version} request ({e!r})")
            return
        request = Request(
            header.api_key, header.api_version, header.correlation_id, header.client_id,
            body, self.broker, self.client_host,
        )
        slot = [_WAITING]
        self._slots.append(slot)
        if len(self._slots) >= self.max_in_flight and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        # The errback also catches a body that does not encode.
        Deferred.fromCoroutine(handler.handle(request)).addCallback(
            self._answered, slot, request
        ).addErrback(self._failed, request)

    def _answer_now(self, response):
        self._slots.append([response])
        self._flush()

    def _answered(self, body, slot, request):
        # Twisted transports take bytes only, so records are copied once here.
        slot[0] = None if body is None else encode_response(
            request.api_key, request.api_version, request.correlation_id, body
        )
        self._flush()

    def _failed(self, failure, request):
        # A handler that raises (or answers what does not encode) is a
        # broker bug, not a client mistake: keep the traceback, and close
        # since no well-formed answer exists.
        log.failure(
            "{api} v{version} handler failed", failure,
            api=ApiKey(request.api_key).name, version=request.api_version,
        )
        if not self._closed:
            self._drop("handler failed")

    def _flush(self):
        slots = self._slots
        while slots and slots[0][0] is not _WAITING:
            response = slots.popleft()[0]
            if response is not None and not self._closed:
                self.transport.write(response)
        if self._closed:
            return
        if self._closing and not slots:
            self.transport.loseConnection()
        elif self._paused and len(slots) < self.max_in_flight // 2:
            self._paused = False
            self.transport.resumeProducing()


class KafkaFactory(Factory):
    protocol = KafkaProtocol

    def __init__(self, broker, max_request_size):
        self.broker = broker
        self.max_request_size = max_request_size
        self.connections = set()

    def disconnect_all(self):
        """Close every client connection once its pending requests are
        answered (on shutdown: clients reconnect to whichever broker now
        owns their partitions)."""
        for connection in list(self.connections):
            connection.close_when_answered()

    def buildProtocol(self, addr):
        protocol = self.protocol(self.broker, self.max_request_size)
        protocol.factory = self
        return protocol
