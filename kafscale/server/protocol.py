"""One Kafka client connection: size-prefixed frames in, responses out in
request order, however the handlers interleave."""

from collections import deque
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from kafscale.config import BrokerConfig
from kafscale.handlers.dispatch import Handler, Request, handlers_for, unsupported_version_response
from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError
from kafscale.protocol.messages import (
    ApiKey,
    UnsupportedVersion,
    decode_request_header,
    encode_response,
    request_codec,
)
from kafscale.security.listeners import PRE_AUTHENTICATION_MAX_FRAME, ListenerSecurity
from kafscale.security.principal import ANONYMOUS
from kafscale.security.sasl import AuthenticationFailed, IllegalSaslState
from kafscale.security.tls import peer_subject
from kafscale.security.quotas import FETCH, PRODUCE, REQUESTS

log = logger("kafscale.server")

_THROTTLED_ON_THE_CLIENT = {ApiKey.PRODUCE: 6, ApiKey.FETCH: 8}
"""The first versions whose clients hold back by themselves when told a
throttle time (KIP-219); to older ones the answer is sent late instead."""

_WAITING = object()

PRE_AUTHENTICATION_APIS = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})
"""What a connection to a SASL listener may ask before it has authenticated."""


class _Slot:
    """One dispatched request's place in the answer order."""

    __slots__ = ("answer", "reserved", "elements", "running", "throttle_ms")

    def __init__(self, answer=_WAITING, reserved=0, elements=0):
        self.answer = answer
        # How long a quota throttles the client for this request.
        self.throttle_ms = 0
        # Bytes of output the answer may take, and the array elements its
        # request holds, both counted until the answer is written.
        self.reserved = reserved
        self.elements = elements
        # The handler's Deferred while it runs, for cancelling on close.
        self.running = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A decoded request waiting for the connection's bounds to let it start."""

    handler: Handler
    request: Request
    reserved: int
    elements: int
    size: int


@implementer(IPushProducer, IHandshakeListener)
class KafkaProtocol(Protocol):
    """Reads frames, dispatches each to its handler at once (so a slow fetch
    does not hold up a heartbeat's processing), and writes the answers in
    the order the requests came, as Kafka clients require.

    Memory and work per connection are bounded: a frame larger than the
    maximum closes the connection before its body is read; a request whose
    arrays hold more than ``max_request_elements`` elements in all closes
    it before they are built; a frame of ``decode_inline_below`` bytes or
    more is decoded, and the answer to a request of ``encode_inline_below``
    elements or more encoded, off the reactor, one at a time across
    connections. At most ``max_in_flight`` requests (the factory's) are
    dispatched at once, the rest of a pipelined burst waiting undecoded
    with reading paused; and while the client leaves its answers unread
    (the transport's buffer is full), or the answers under way may take
    more than ``max_unsent_bytes``, or the requests under way hold more
    than ``max_request_elements`` elements, or a handler holds its request
    back (a produce waiting for room in full buffers:
    Request.hold_reading), nothing more is dispatched or read. Answers
    ready but not sent count against the broker's buffer budget, as
    produced batches do. Long polls still running when the connection
    closes are cancelled.

    On a SASL listener, until the client has authenticated it may send only
    ApiVersions, SaslHandshake and SaslAuthenticate, in frames of at most
    PRE_AUTHENTICATION_MAX_FRAME bytes; anything else closes the
    connection, as does a failed authentication once answered. Over TLS, a
    client certificate names the principal (on listeners without SASL).
    """

    max_unsent_bytes = 16 << 20
    max_request_elements = 100_000
    decode_inline_below = 64 << 10
    encode_inline_below = 2000

    def __init__(self, broker, max_request_size, security=ListenerSecurity()):
        self.broker = broker
        self.max_request_size = max_request_size
        self.security = security
        self.client_host = None
        # Who the client is: ANONYMOUS until a client certificate names it,
        # or the SASL exchange once it completes.
        self._principal = ANONYMOUS
        self.authentication = security.authentication()
        self._buffer = bytearray()
        self._position = 0
        self._frame_size = None
        self._next = None
        self._decoding = False
        self._slots = deque()
        self._reserved = 0
        self._elements = 0
        self._reading_paused = False
        self._output_full = False
        # Requests a handler holds back until their Deferreds fire.
        self._holding = 0
        # Bytes of answers ready and not yet written, and written since the
        # transport's buffer filled: counted in the broker's budget.
        self._unsent = 0
        self._written_while_full = 0
        self._pumping = False
        self._closed = False
        self._closing = False
        # While a quota throttles the client, nothing more is read or
        # dispatched (Kafka mutes the channel); the call that ends it.
        self._muted = None

    def connectionMade(self):
        # Answers are whole frames written at once: Nagle would only hold
        # the last segment of one back for an ACK, as Kafka brokers know.
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        # The transport tells us (pauseProducing) when the client stops
        # reading what we write.
        self.transport.registerProducer(self, True)
        self.factory.connections.add(self)

    def handshakeCompleted(self):
        mapping = self.security.subject_mapping
        if mapping is None or self.authentication is not None:
            return
        subject = peer_subject(self.transport)
        if subject is None:
            return
        try:
            self._principal = mapping.principal(subject)
        except ValueError as e:
            self._drop(str(e))

    @property
    def principal(self):
        authentication = self.authentication
        return self._principal if authentication is None else authentication.principal or ANONYMOUS

    @property
    def authenticated(self):
        """Whether the client may send any request (not only SASL's)."""
        return self.authentication is None or self.authentication.complete

    def connectionLost(self, reason):
        self._closed = True
        self._buffer = bytearray()
        self._next = None
        slots, self._slots = self._slots, deque()
        for slot in slots:
            if slot.running is not None:
                slot.running.cancel()
        self._written_while_full = 0
        self._unsent_less(self._unsent)
        if self._muted is not None and self._muted.active():
            self._muted.cancel()
        self.factory.connection_closed(self)

    @property
    def in_flight(self):
        """Requests dispatched and not yet answered."""
        return len(self._slots)

    def close_when_answered(self):
        """Take no more requests; close once the pending ones are answered."""
        self._closing = True
        self._flush()

    # -- IPushProducer: the transport's write buffer --------------------

    def pauseProducing(self):
        self._output_full = True

    def resumeProducing(self):
        # The transport's buffer drained: what was written meanwhile is sent.
        self._output_full = False
        written, self._written_while_full = self._written_while_full, 0
        self._unsent_less(written)
        self._pump()

    def _unsent_less(self, size):
        self._unsent -= size
        if size:
            self.broker.budget.release(size)

    def stopProducing(self):
        self._output_full = True

    # -- reading and dispatching ---------------------------------------

    def dataReceived(self, data):
        if self._closing or self._closed:
            return
        self._buffer += data
        self._pump()

    def _pump(self):
        """Decode the frames buffered and dispatch them while the bounds
        allow, reading more only while they do."""
        if self._pumping:
            # Called back from a dispatch (an answer ready at once): the
            # loop below goes on by itself.
            return
        self._pumping = True
        try:
            while not self._closed and not self._closing:
                if self._next is None:
                    if self._decoding or not self._decode_next_frame():
                        break
                elif self._admits(self._next):
                    self._start(self._next)
                    self._next = None
                else:
                    break
        finally:
            self._pumping = False
        if self._closed:
            return
        del self._buffer[:self._position]
        self._position = 0
        self._read_while(self._next is None and not self._decoding and not self._output_full
                         and not self._holding and len(self._slots) < self.factory.max_in_flight
                         and self._muted is None)

    def _read_while(self, wanted):
        if self._closed or not self.connected:
            return
        if wanted and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()
        elif not wanted and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _admits(self, pending):
        """Whether the decoded request ``pending`` may start now."""
        if self._output_full or self._holding or len(self._slots) >= self.factory.max_in_flight \
                or self._muted is not None:
            return False
        # One large request or answer at a time is always allowed.
        if pending.reserved and self._reserved and self._reserved + pending.reserved > self.max_unsent_bytes:
            return False
        return not (self._elements and self._elements + pending.elements > self.max_request_elements)

    def _decode_next_frame(self):
        """Take the next whole frame from the buffer and decode it (or start
        to, off the reactor); -> False when there is none yet."""
        buffer = self._buffer
        position = self._position
        if self._frame_size is None:
            if len(buffer) - position < 4:
                return False
            size = int.from_bytes(buffer[position : position + 4], "big", signed=True)
            limit = self.max_request_size if self.authenticated else PRE_AUTHENTICATION_MAX_FRAME
            if size < 0 or size > limit:
                self._drop(f"frame size {size} outside 0..{limit}"
                           + ("" if self.authenticated else " before authentication"))
                return False
            position = self._position = position + 4
            self._frame_size = size
        if len(buffer) - position < self._frame_size:
            return False
        end = position + self._frame_size
        with memoryview(buffer) as view:
            frame = bytes(view[position:end])
        self._position = end
        self._frame_size = None
        authentication = self.authentication
        if authentication is not None and authentication.bare_tokens and not authentication.complete:
            self._bare_token(frame)
        else:
            self._decode(frame)
        return True

    def _bare_token(self, token):
        """One SASL token after a SaslHandshake v0: the answer is a bare
        frame too, and a failure (after the delay) closes the connection."""
        self._decoding = True
        Deferred.fromCoroutine(self._answer_bare_token(token))

    async def _answer_bare_token(self, token):
        try:
            answer = await self.authentication.step(token)
        except (AuthenticationFailed, IllegalSaslState) as e:
            log.warn("failed authentication from {client} as {user!r} with {mechanism}: {why}",
                     client=self.client_host, user=getattr(e, "user", None),
                     mechanism=self.authentication.mechanism, why=e)
            await deferLater(self.broker.reactor, self.broker.config.failed_authentication_delay_ms / 1000)
            if not self._closed:
                self._drop("authentication failed")
            return
        except MetadataError as e:
            # Bare tokens have no error answer: the client reconnects.
            if not self._closed:
                self._drop(f"cannot read credentials: {e}")
            return
        self._decoding = False
        if not self._closed:
            self._answer_now(len(answer).to_bytes(4, "big") + answer)

    def _drop(self, why):
        log.warn("closing connection from {client}: {why}", client=self.client_host, why=why)
        self._closed = True
        self._buffer = bytearray()
        self._position = 0
        self.transport.abortConnection()

    def _decode(self, frame):
        view = memoryview(frame)
        size = len(frame)
        try:
            header = decode_request_header(view)
        except UnsupportedVersion as e:
            if e.api_key == ApiKey.API_VERSIONS:
                self._answer_now(unsupported_version_response(e.correlation_id, handlers_for(self.broker.config)))
            else:
                self._drop(f"unsupported API key {e.api_key} version {e.api_version}")
            return
        except Exception as e:
            self._drop(f"undecodable request header ({e!r})")
            return
        if not self.authenticated and header.api_key not in PRE_AUTHENTICATION_APIS:
            self._drop(f"{ApiKey(header.api_key).name} before authentication")
            return
        handlers = handlers_for(self.broker.config)
        handler = handlers.get(header.api_key)
        if handler is None or not handler.min_version <= header.api_version <= handler.max_version:
            if header.api_key == ApiKey.API_VERSIONS:
                self._answer_now(unsupported_version_response(header.correlation_id, handlers))
            else:
                self._drop(f"unsupported API key {header.api_key} version {header.api_version}")
            return
        codec = request_codec(header.api_key, header.api_version)
        if len(frame) < self.decode_inline_below:
            try:
                decoded = codec.decode_bounded(view, header.body_offset, self.max_request_elements)
            except Exception as e:
                self._undecodable(Failure(e), header)
                return
            self._decoded(decoded, header, handler, size)
        else:
            # A large frame may hold many elements: decoding it here would
            # keep every other connection waiting.
            self._decoding = True
            self.factory.off_reactor(
                codec.decode_bounded, view, header.body_offset, self.max_request_elements
            ).addCallbacks(self._decoded, self._undecodable, callbackArgs=(header, handler, size),
                           errbackArgs=(header,))

    def _decoded(self, decoded, header, handler, size):
        self._decoding = False
        if self._closed:
            return
        body, _, elements = decoded
        reserved = 0 if handler.answer_bytes is None else handler.answer_bytes(body)
        broker = self.broker
        self._next = _Pending(handler, Request(
            header.api_key, header.api_version, header.correlation_id, header.client_id, body, self.client_host,
            topics=broker.topics, logs=broker.logs, view=broker.view, groups=broker.groups, config=broker.config,
            clock=broker.reactor, rewriter=broker.rewriter, principal=self.principal, listener=self.security.name,
            authentication=self.authentication, credentials=broker.metadata,
            hold_reading=self._hold_reading, close_when_answered=self.close_when_answered,
            transactions=broker.transactions,
            authorizer=broker.authorizer, acl_store=broker.acl_store, quota_store=broker.quotas,
            broker_configs=broker.broker_configs,
        ), reserved, elements, size)
        self._pump()

    def _hold_reading(self, until):
        """Dispatch and read nothing more until the Deferred ``until`` fires."""
        self._holding += 1
        until.addBoth(self._held_until)

    def _held_until(self, _):
        self._holding -= 1
        if not self._closed:
            self._pump()

    def _undecodable(self, failure, header):
        self._decoding = False
        if not self._closed:
            self._drop(f"undecodable {ApiKey(header.api_key).name} v{header.api_version} request"
                       f" ({failure.value!r})")

    def _start(self, pending):
        slot = _Slot(reserved=pending.reserved, elements=pending.elements)
        self._reserved += pending.reserved
        self._elements += pending.elements
        self._slots.append(slot)
        request = pending.request
        # Counted as it starts, so that the requests a client pipelined
        # after one that exceeded its quota wait for the throttle to end.
        slot.throttle_ms = self._throttle_request(request, pending.size)
        if slot.throttle_ms:
            self._mute(slot.throttle_ms)
        requests = self.factory.requests
        started = None if requests is None else requests.started()
        running = Deferred.fromCoroutine(pending.handler.handle(request))
        if requests is not None:
            running.addCallback(self._report, requests, request.api_key, started)
        # The errback also catches a body that does not encode.
        running.addCallback(self._answered, slot, request).addErrback(self._failed, request)
        if slot.answer is _WAITING and pending.handler.cancel_on_close:
            slot.running = running

    @staticmethod
    def _report(body, requests, api_key, started):
        requests.answered(api_key, body, requests.started() - started)
        return body

    def _answer_now(self, response):
        slot = _Slot()
        self._slots.append(slot)
        self._encoded(response, slot)

    def _answered(self, body, slot, request):
        slot.running = None
        if self.authentication is not None and self.authentication.failed:
            # Kafka closes a connection whose authentication failed, once
            # the client has its answer.
            self._closing = True
        throttle_ms = slot.throttle_ms
        if request.api_key == ApiKey.FETCH and body is not None:
            fetched = self._throttle_fetched(request, body)
            if fetched:
                self._mute(fetched)
            throttle_ms = max(throttle_ms, fetched)
        if throttle_ms:
            if body is not None and "throttle_time_ms" in body:
                body["throttle_time_ms"] = max(body["throttle_time_ms"], throttle_ms)
            if request.api_version < _THROTTLED_ON_THE_CLIENT.get(request.api_key, 0):
                # Older clients do not hold back by themselves (KIP-219):
                # their answer is held back instead.
                self.broker.reactor.callLater(throttle_ms / 1000, self._answer_throttled, body, slot, request)
                return
        self._answer(body, slot, request)

    def _answer_throttled(self, body, slot, request):
        if not self._closed:
            self._answer(body, slot, request)

    def _throttle_request(self, request, size):
        """Count a request (of ``size`` bytes) against the client's request
        rate and, for a produce, its produce byte rate; -> how many ms to
        throttle it for (0: within its quotas)."""
        if request.api_key == ApiKey.API_VERSIONS:
            return 0
        quotas = self.broker.quotas
        user = request.principal.partition(":")[2]
        client_id = request.client_id or ""
        throttle = quotas.record(REQUESTS, user, client_id, 1)
        if request.api_key == ApiKey.PRODUCE:
            throttle = max(throttle, quotas.record(PRODUCE, user, client_id, size))
        return throttle

    def _throttle_fetched(self, request, body):
        """Count a fetch's answer against the client's fetch byte rate;
        -> how many ms to throttle it for."""
        fetched = sum(len(p["records"] or b"") for t in body["responses"] for p in t["partitions"])
        return self.broker.quotas.record(FETCH, request.principal.partition(":")[2], request.client_id or "",
                                         fetched)

    def _mute(self, throttle_ms):
        """Read and dispatch nothing more for ``throttle_ms``, or longer if
        already muted for longer."""
        reactor = self.broker.reactor
        if self._muted is not None and self._muted.active():
            if self._muted.getTime() >= reactor.seconds() + throttle_ms / 1000:
                return
            self._muted.cancel()
        self._muted = reactor.callLater(throttle_ms / 1000, self._unmute)

    def _unmute(self):
        self._muted = None
        if not self._closed:
            self._pump()

    def _answer(self, body, slot, request):
        if body is not None and slot.elements >= self.encode_inline_below:
            # The answer to a request naming many things names as many.
            self.factory.off_reactor(
                encode_response, request.api_key, request.api_version, request.correlation_id, body
            ).addCallbacks(self._encoded, self._failed, callbackArgs=(slot,), errbackArgs=(request,))
            return
        # Twisted transports take bytes only, so records are copied once here.
        self._encoded(None if body is None else encode_response(
            request.api_key, request.api_version, request.correlation_id, body
        ), slot)

    def _encoded(self, answer, slot):
        slot.answer = answer
        if answer is not None and not self._closed:
            self._unsent += len(answer)
            self.broker.budget.add(len(answer))
        self._flush()

    def _failed(self, failure, request):
        if failure.check(CancelledError) and self._closed:
            # A long poll whose client has gone.
            return
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
        while slots and slots[0].answer is not _WAITING:
            slot = slots.popleft()
            self._reserved -= slot.reserved
            self._elements -= slot.elements
            if slot.answer is not None and not self._closed:
                self.transport.write(slot.answer)
                if self._output_full:
                    self._written_while_full += len(slot.answer)
                else:
                    self._unsent_less(len(slot.answer))
        if self._closed:
            return
        if self._closing and not slots:
            # A transport with a producer registered (paused, say, by a
            # client that stopped reading) would wait for it before closing.
            self.transport.unregisterProducer()
            self.transport.loseConnection()
        else:
            self._pump()


class KafkaFactory(Factory):
    """Builds a KafkaProtocol per client, refusing connections beyond
    ``max_connections`` in all or ``max_connections_per_address`` from one
    address (None: no limit), so that clients cannot take the file
    descriptors the object and metadata stores need. Each connection has
    at most ``max_in_flight`` requests under way."""

    protocol = KafkaProtocol

    def __init__(self, broker, max_request_size, max_connections=None, max_connections_per_address=None,
                 security=ListenerSecurity(), max_in_flight=BrokerConfig().max_in_flight_requests, requests=None):
        self.broker = broker
        # Told of each request answered (kafscale.metrics), if anyone listens.
        self.requests = requests
        self.max_request_size = max_request_size
        self.security = security
        self.max_in_flight = max_in_flight
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.connections = set()
        # Large frames are decoded, and large answers encoded, in a thread
        # one at a time, so that the reactor thread keeps most of the
        # interpreter meanwhile.
        self._off_reactor = DeferredSemaphore(1)
        self._open = 0
        self._per_address = {}

    def disconnect_all(self):
        """Close every client connection once its pending requests are
        answered (on shutdown: clients reconnect to whichever broker now
        owns their partitions)."""
        for connection in list(self.connections):
            connection.close_when_answered()

    def off_reactor(self, work, *args):
        """``work(*args)`` (a decode or an encode) in a thread, after the
        work queued before it; -> a Deferred of its result."""
        return self._off_reactor.run(deferToThread, work, *args)

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)
        if self.max_connections is not None and self._open >= self.max_connections:
            log.warn("refusing a connection from {client}: {count} connections open", client=host,
                     count=self._open)
            return None
        from_host = self._per_address.get(host, 0)
        if self.max_connections_per_address is not None and from_host >= self.max_connections_per_address:
            log.warn("refusing a connection from {client}: {count} connections open from there",
                     client=host, count=from_host)
            return None
        self._per_address[host] = from_host + 1
        self._open += 1
        protocol = self.protocol(self.broker, self.max_request_size, self.security)
        protocol.factory = self
        protocol.client_host = host if host is not None else str(addr)
        return protocol

    def connection_closed(self, protocol):
        self.connections.discard(protocol)
        self._open -= 1
        host = protocol.client_host
        count = self._per_address.get(host, 0) - 1
        if count > 0:
            self._per_address[host] = count
        else:
            self._per_address.pop(host, None)
