"""
A small etcd v3 client over etcd's JSON gateway (the ``/v3/...`` HTTP paths), on treq.

Why not a library: txaioetcd, the only Twisted etcd client, hard-codes the
``/v3alpha`` prefix that etcd 3.4+ no longer serves, ignores HTTP status, drops
watch events larger than one TCP read and loses event types.

The gateway's dialect: keys and values are base64, int64 fields come back as
JSON strings, and a field equal to its zero value (0, false, "", PUT) is
omitted. Every public ``async def`` method returns its result when awaited;
wrap it with ``Deferred.fromCoroutine`` where a Deferred is needed.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from json.decoder import WHITESPACE

from treq import content
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    PotentialDataLoss,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import IResponse

from kafscale.http import BytesBody
from kafscale.log import logger

log = logger("kafscale.etcd.client")

__all__ = [
    "Compare",
    "DeleteResult",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdError",
    "EtcdFutureRevision",
    "EtcdInvalidRequest",
    "EtcdUnavailable",
    "Event",
    "KeyValue",
    "Lease",
    "LeaseNotFound",
    "LeaseTimeToLive",
    "Op",
    "PutResult",
    "RangeResult",
    "TxnResult",
    "Watch",
    "prefix_range_end",
]


# --- errors ------------------------------------------------------------------


class EtcdError(Exception):
    """etcd refused a request, or answered something this client cannot read.

    ``code`` is the gRPC status code from the gateway's error body and
    ``status`` the HTTP status, when known.
    """

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class EtcdUnavailable(EtcdError):
    """etcd could not be reached or could not serve the request now: retriable.

    A mutation that failed this way (a timeout in particular) may still have
    been applied, as with any etcd client.
    """


class _ConnectionDropped(EtcdUnavailable):
    """The connection closed before any answer: usually a pooled keep-alive
    connection that etcd had closed (after a restart, say)."""


class EtcdInvalidRequest(EtcdError):
    """etcd rejected the request as malformed (empty key, too large, duplicate
    key in a txn, ...): retrying will not help."""


class LeaseNotFound(EtcdError):
    """The lease does not exist: it expired or was revoked."""


class EtcdCompacted(EtcdError):
    """The requested revision was compacted away."""


class EtcdFutureRevision(EtcdError):
    """The requested revision is newer than etcd's current revision."""


class EtcdTokenInvalid(EtcdError):
    """etcd no longer takes the client's auth token (it expired, or etcd
    restarted): authenticate again."""


# gRPC status codes the gateway reports in its error bodies.
_GRPC_INVALID_ARGUMENT = 3
_GRPC_DEADLINE_EXCEEDED = 4
_GRPC_UNAVAILABLE = 14

_ERRORS_BY_MESSAGE = (
    ("requested lease not found", LeaseNotFound),
    ("required revision has been compacted", EtcdCompacted),
    ("required revision is a future revision", EtcdFutureRevision),
    ("invalid auth token", EtcdTokenInvalid),
)


def _error_from_reply(status: int | None, body: object) -> EtcdError:
    """Map a gateway error to an exception.

    Unary calls fail with ``{"error": msg, "code": n, "message": msg}``;
    streams end with ``{"error": {"grpc_code": n, "http_code": s, "message": msg}}``.
    """
    code = None
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("grpc_code")
            status = error.get("http_code", status)
            message = error.get("message")
        else:
            code = body.get("code")
            message = body.get("message") or error
    if not message:
        message = f"HTTP {status}: {body!r:.200}"
    for fragment, error_class in _ERRORS_BY_MESSAGE:
        if fragment in message:
            return error_class(message, code=code, status=status)
    if code in (_GRPC_UNAVAILABLE, _GRPC_DEADLINE_EXCEEDED) or status in (502, 503, 504):
        return EtcdUnavailable(message, code=code, status=status)
    if code == _GRPC_INVALID_ARGUMENT:
        return EtcdInvalidRequest(message, code=code, status=status)
    return EtcdError(message, code=code, status=status)


# --- results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch. A DELETE's ``kv`` carries only the key and
    the revision of the deletion; ``prev_kv`` is set when the watch asked for it."""

    type: str  # "PUT" or "DELETE"
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    count: int
    more: bool
    header_revision: int


@dataclass(frozen=True, slots=True)
class PutResult:
    header_revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: int
    prev_kvs: list[KeyValue]
    header_revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    responses: list[RangeResult | PutResult | DeleteResult]
    header_revision: int


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl: int  # seconds, as granted: etcd raises TTLs below its minimum


@dataclass(frozen=True, slots=True)
class LeaseTimeToLive:
    id: int
    ttl: int  # seconds left
    granted_ttl: int
    keys: list[bytes] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _header_revision(reply: dict) -> int:
    return int(reply.get("header", {}).get("revision", 0))


def _key_value(kv: dict) -> KeyValue:
    return KeyValue(
        key=_unb64(kv.get("key", "")),
        value=_unb64(kv.get("value", "")),
        create_revision=int(kv.get("create_revision", 0)),
        mod_revision=int(kv.get("mod_revision", 0)),
        version=int(kv.get("version", 0)),
        lease=int(kv.get("lease", 0)),
    )


def _optional_key_value(kv: dict | None) -> KeyValue | None:
    return None if kv is None else _key_value(kv)


def _range_result(reply: dict) -> RangeResult:
    return RangeResult(
        kvs=[_key_value(kv) for kv in reply.get("kvs", ())],
        count=int(reply.get("count", 0)),
        more=bool(reply.get("more", False)),
        header_revision=_header_revision(reply),
    )


def _put_result(reply: dict) -> PutResult:
    return PutResult(_header_revision(reply), _optional_key_value(reply.get("prev_kv")))


def _delete_result(reply: dict) -> DeleteResult:
    return DeleteResult(
        deleted=int(reply.get("deleted", 0)),
        prev_kvs=[_key_value(kv) for kv in reply.get("prev_kvs", ())],
        header_revision=_header_revision(reply),
    )


def _event(event: dict) -> Event:
    return Event(
        type=event.get("type", "PUT"),
        kv=_key_value(event["kv"]),
        prev_kv=_optional_key_value(event.get("prev_kv")),
    )


# --- requests ----------------------------------------------------------------


def prefix_range_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    # Only 0xff bytes (or nothing): "\0" means "to the end of the keyspace".
    return b"\0"


def _key_range(key: bytes, range_end: bytes | None, prefix: bool) -> dict:
    if not key:
        raise ValueError("etcd keys are never empty")
    if prefix and range_end is not None:
        raise ValueError("give prefix=True or range_end, not both")
    request = {"key": _b64(key)}
    if prefix:
        range_end = prefix_range_end(key)
    if range_end is not None:
        request["range_end"] = _b64(range_end)
    return request


def _range_request(key, range_end, prefix, limit, revision, keys_only, count_only) -> dict:
    request = _key_range(key, range_end, prefix)
    if limit:
        request["limit"] = limit
    if revision:
        request["revision"] = revision
    if keys_only:
        request["keys_only"] = True
    if count_only:
        request["count_only"] = True
    return request


def _put_request(key: bytes, value: bytes, lease: int, prev_kv: bool) -> dict:
    request = {"key": _b64(_nonempty(key)), "value": _b64(value)}
    if lease:
        request["lease"] = lease
    if prev_kv:
        request["prev_kv"] = True
    return request


def _delete_request(key, range_end, prefix, prev_kv) -> dict:
    request = _key_range(key, range_end, prefix)
    if prev_kv:
        request["prev_kv"] = True
    return request


def _nonempty(key: bytes) -> bytes:
    if not key:
        raise ValueError("etcd keys are never empty")
    return key


_COMPARE_RESULTS = {"=": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a txn. Build it with the class methods::

        Compare.version(key, "=", 0)          # key does not exist
        Compare.value(key, "=", b"epoch-7")
        Compare.mod_revision(key, "<", 1200)

    A missing key has version, create_revision, mod_revision and lease 0.
    """

    key: bytes
    target: str  # "VALUE", "VERSION", "CREATE", "MOD" or "LEASE"
    op: str  # "=", "!=", "<" or ">"
    operand: bytes | int

    def __post_init__(self):
        _nonempty(self.key)
        if self.op not in _COMPARE_RESULTS:
            raise ValueError(f"compare operator {self.op!r} is not one of = != < >")

    @classmethod
    def value(cls, key: bytes, op: str, value: bytes) -> Compare:
        return cls(key, "VALUE", op, value)

    @classmethod
    def version(cls, key: bytes, op: str, version: int) -> Compare:
        return cls(key, "VERSION", op, version)

    @classmethod
    def create_revision(cls, key: bytes, op: str, revision: int) -> Compare:
        return cls(key, "CREATE", op, revision)

    @classmethod
    def mod_revision(cls, key: bytes, op: str, revision: int) -> Compare:
        return cls(key, "MOD", op, revision)

    @classmethod
    def lease(cls, key: bytes, op: str, lease_id: int) -> Compare:
        return cls(key, "LEASE", op, lease_id)

    def _request(self) -> dict:
        operand_field = {
            "VALUE": "value",
            "VERSION": "version",
            "CREATE": "create_revision",
            "MOD": "mod_revision",
            "LEASE": "lease",
        }[self.target]
        operand = _b64(self.operand) if self.target == "VALUE" else self.operand
        return {
            "key": _b64(self.key),
            "target": self.target,
            "result": _COMPARE_RESULTS[self.op],
            operand_field: operand,
        }


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a txn branch: ``Op.put``, ``Op.delete`` or ``Op.range``."""

    kind: str  # "put", "delete_range" or "range": names the gateway's request_*/response_* fields
    request: dict

    @classmethod
    def put(cls, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> Op:
        return cls("put", _put_request(key, value, lease, prev_kv))

    @classmethod
    def delete(cls, key: bytes, *, prefix: bool = False, range_end: bytes | None = None,
               prev_kv: bool = False) -> Op:
        return cls("delete_range", _delete_request(key, range_end, prefix, prev_kv))

    @classmethod
    def range(cls, key: bytes, range_end: bytes | None = None, *, prefix: bool = False,
              limit: int = 0, revision: int = 0, keys_only: bool = False,
              count_only: bool = False) -> Op:
        return cls("range", _range_request(key, range_end, prefix, limit, revision, keys_only,
                                           count_only))


_OP_RESULTS = {"range": _range_result, "put": _put_result, "delete_range": _delete_result}


def _op_result(response: dict) -> RangeResult | PutResult | DeleteResult:
    ((name, reply),) = response.items()
    return _OP_RESULTS[name.removeprefix("response_")](reply)


_JSON_HEADERS = {b"Content-Type": [b"application/json"]}


def _encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def _parse_reply(status: int, body: bytes) -> dict:
    try:
        reply = json.loads(body)
    except ValueError:
        reply = body[:200]
    if status != 200 or not isinstance(reply, dict):
        raise _error_from_reply(status, reply)
    return reply


def _stream_result(reply: dict) -> dict:
    """The single ``{"result": ...}`` of a streaming call that sent one request."""
    if "result" not in reply:
        raise _error_from_reply(None, reply)
    return reply["result"]


# --- the client --------------------------------------------------------------


# A watch stream that delivers nothing for this long is reopened from its
# next revision: no event is lost, and a stream that hangs silently (its
# connection blackholed, its server stuck) costs at most this much
# staleness. etcd's own progress notifications come every ten minutes.
WATCH_SILENCE = 30.0


class EtcdClient:
    """An etcd v3 client for one cluster.

    ``endpoints`` is a list of URLs or one comma-separated string
    (``"http://a:2379,http://b:2379"``). A request that cannot reach one
    endpoint (refused, dropped, timed out, etcd unavailable) is tried on the
    next; the endpoint that answered is tried first from then on.
    ``timeout`` bounds each attempt, in seconds. ``tls`` (an
    IPolicyForHTTPS, see kafscale.security.tls.ClientTLS) checks https://
    endpoints' certificates and presents the client's; ``credentials``
    (user, password) log in to etcd's own authentication, again whenever
    etcd stops taking the token.
    """

    def __init__(self, endpoints: Sequence[str] | str, *, reactor=None,
                 pool: HTTPConnectionPool | None = None, timeout: float = 5.0,
                 watch_silence: float = WATCH_SILENCE, tls=None, credentials: tuple[str, str] | None = None):
        if isinstance(endpoints, str):
            endpoints = endpoints.split(",")
        self._endpoints = [url.strip().rstrip("/") for url in endpoints if url.strip()]
        if not self._endpoints:
            raise ValueError("no etcd endpoint given")
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._owns_pool = pool is None
        if pool is None:
            pool = HTTPConnectionPool(reactor)
            # Keep enough idle connections for concurrent commits to reuse.
            pool.maxPersistentPerHost = 8
        self._pool = pool
        agent = Agent(reactor, connectTimeout=timeout, pool=self._pool) if tls is None \
            else Agent(reactor, contextFactory=tls, connectTimeout=timeout, pool=self._pool)
        self._http = HTTPClient(agent)
        self._credentials = credentials
        self._token = None
        self._login = DeferredLock()
        self._timeout = timeout
        self._watch_silence = watch_silence
        self._preferred = 0
        self._watches: set[Watch] = set()

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    async def close(self) -> None:
        """Stop this client's watches and close its connection pool (a pool
        passed in belongs to the caller and stays open)."""
        for watch in list(self._watches):
            await watch.stop()
        if self._owns_pool:
            await self._pool.closeCachedConnections()

    # key-value

    async def range(self, key: bytes, range_end: bytes | None = None, *, prefix: bool = False,
                    limit: int = 0, revision: int = 0, keys_only: bool = False,
                    count_only: bool = False) -> RangeResult:
        """Keys in [key, range_end), or under the prefix ``key``; ``key``
        alone when neither is given. ``revision`` reads the past (0: now)."""
        request = _range_request(key, range_end, prefix, limit, revision, keys_only, count_only)
        return _range_result(await self._call("/v3/kv/range", request))

    async def get(self, key: bytes) -> KeyValue | None:
        result = await self.range(key)
        return result.kvs[0] if result.kvs else None

    async def put(self, key: bytes, value: bytes, *, lease: int = 0,
                  prev_kv: bool = False) -> PutResult:
        request = _put_request(key, value, lease, prev_kv)
        return _put_result(await self._call("/v3/kv/put", request))

    async def delete(self, key: bytes, *, prefix: bool = False, range_end: bytes | None = None,
                     prev_kv: bool = False) -> DeleteResult:
        request = _delete_request(key, range_end, prefix, prev_kv)
        return _delete_result(await self._call("/v3/kv/deleterange", request))

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op] = (),
                  failure: Sequence[Op] = ()) -> TxnResult:
        """Run ``success`` if every compare holds, else ``failure``, atomically.
        ``responses`` holds one result per op of the branch that ran."""
        request = {
            "compare": [condition._request() for condition in compare],
            "success": [{f"request_{op.kind}": op.request} for op in success],
            "failure": [{f"request_{op.kind}": op.request} for op in failure],
        }
        reply = await self._call("/v3/kv/txn", request)
        return TxnResult(
            succeeded=bool(reply.get("succeeded", False)),
            responses=[_op_result(response) for response in reply.get("responses", ())],
            header_revision=_header_revision(reply),
        )

    async def compact(self, revision: int, *, physical: bool = False) -> int:
        """Discard history before ``revision``; returns the header revision."""
        request = {"revision": revision, "physical": physical}
        return _header_revision(await self._call("/v3/kv/compaction", request))

    # leases

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> Lease:
        """A new lease; its ``ttl`` is the one etcd granted, which can be
        longer than asked (etcd raises TTLs below its minimum)."""
        reply = await self._call("/v3/lease/grant", {"TTL": ttl, "ID": lease_id})
        return Lease(int(reply["ID"]), int(reply["TTL"]))

    async def lease_keepalive(self, lease_id: int, *, timeout: float | None = None) -> int:
        """Renew a lease; returns its TTL, restarted in full. ``timeout``
        replaces the client's request timeout for this call. Raises
        LeaseNotFound if it has already expired."""
        result = _stream_result(await self._call("/v3/lease/keepalive", {"ID": lease_id}, timeout))
        ttl = int(result.get("TTL", 0))
        if ttl <= 0:
            raise LeaseNotFound(f"lease {lease_id:x} has expired")
        return ttl

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease, deleting the keys attached to it.
        Raises LeaseNotFound if it has expired."""
        await self._call("/v3/lease/revoke", {"ID": lease_id})

    async def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseTimeToLive:
        """Raises LeaseNotFound if the lease has expired."""
        reply = await self._call("/v3/lease/timetolive", {"ID": lease_id, "keys": keys})
        ttl = int(reply.get("TTL", 0))
        if ttl < 0:
            raise LeaseNotFound(f"lease {lease_id:x} has expired")
        return LeaseTimeToLive(
            id=lease_id,
            ttl=ttl,
            granted_ttl=int(reply.get("grantedTTL", 0)),
            keys=[_unb64(key) for key in reply.get("keys", ())],
        )

    # watches

    def watch(self, key: bytes, *, callback: Callable[[list[Event], int], object],
              on_compacted: Callable[[int], object], prefix: bool = False,
              range_end: bytes | None = None, start_revision: int = 0,
              prev_kv: bool = False) -> Watch:
        """Watch a key, a prefix or a range, from ``start_revision`` (0: from now).

        ``callback(events, revision)`` is called with every batch of events,
        in order; ``revision`` is the batch's header revision. If the stream
        drops, or stays silent for the client's ``watch_silence`` seconds
        (a stream can hang without closing: a partition, a stuck server), the
        watch reconnects by itself and resumes after the last event it
        delivered, so no event is lost or repeated.

        If the history it needs has been compacted, the watch ends and calls
        ``on_compacted(compact_revision)``: reload with ``range`` and start a
        new watch from that reply's ``header_revision + 1``.
        """
        request = _key_range(key, range_end, prefix)
        if prev_kv:
            request["prev_kv"] = True
        watch = Watch(self, request, start_revision, callback, on_compacted, self._reactor,
                      self._watch_silence)
        self._watches.add(watch)
        watch._start()
        return watch

    # transport

    async def _call(self, path: str, payload: dict, timeout: float | None = None) -> dict:
        """POST a request; returns the decoded reply."""
        body = _encode(payload)

        async def exchange(endpoint: str) -> dict:
            response = await self._post(endpoint + path, body, await self._headers(endpoint))
            return _parse_reply(response.code, await content(response))

        return await self._logged_in(self._failover, exchange, timeout)

    async def _open_stream(self, path: str, payload: dict) -> IResponse:
        """POST to a streaming endpoint; returns the response once etcd
        accepted it, with its body still to read."""
        body = _encode(payload)

        async def open_stream(endpoint: str) -> IResponse:
            response = await self._post(endpoint + path, body, await self._headers(endpoint))
            if response.code != 200:
                _parse_reply(response.code, await content(response))
            return response

        return await self._logged_in(self._failover, open_stream)

    def _post(self, url: str, body: bytes, headers=_JSON_HEADERS) -> Deferred[IResponse]:
        return self._http.post(url, data=BytesBody(body), headers=headers, unbuffered=True)

    async def _logged_in(self, function, *args):
        """``function(*args)``, once more with a new token when etcd no
        longer takes the one it was given."""
        token = self._token
        try:
            return await function(*args)
        except EtcdTokenInvalid:
            if self._credentials is None:
                raise
            if self._token == token:
                self._token = None
            return await function(*args)

    async def _headers(self, endpoint: str) -> dict:
        """The headers of a request to ``endpoint``: with the auth token,
        logging in first when there is none yet."""
        if self._credentials is None:
            return _JSON_HEADERS
        if self._token is None:
            async with self._login:
                if self._token is None:
                    name, password = self._credentials
                    response = await self._post(endpoint + "/v3/auth/authenticate",
                                                _encode({"name": name, "password": password}))
                    self._token = _parse_reply(response.code, await content(response))["token"]
        return {**_JSON_HEADERS, b"Authorization": [self._token.encode()]}

    async def _failover(self, attempt: Callable[[str], Awaitable], timeout: float | None = None):
        """Run ``attempt(endpoint)`` on each endpoint in turn, the last one
        that worked first, until one does not fail with EtcdUnavailable."""
        unavailable = None
        for step in range(len(self._endpoints)):
            index = (self._preferred + step) % len(self._endpoints)
            endpoint = self._endpoints[index]
            try:
                try:
                    result = await self._bounded(attempt, endpoint, timeout)
                except _ConnectionDropped:
                    # Nothing was answered: most likely a pooled connection etcd
                    # had closed, so one more try on a new connection. (Had etcd
                    # died after applying the request, it is applied twice: a
                    # put harmlessly, a txn then fails its compares.)
                    result = await self._bounded(attempt, endpoint, timeout)
            except EtcdUnavailable as error:
                log.debug("etcd {endpoint} unavailable: {error}", endpoint=endpoint, error=error)
                unavailable = error
                continue
            self._preferred = index
            return result
        raise unavailable

    async def _bounded(self, attempt: Callable[[str], Awaitable], endpoint: str,
                       timeout: float | None = None):
        """One attempt, within the timeout, with transport failures as EtcdUnavailable."""
        request = Deferred.fromCoroutine(attempt(endpoint))
        # A cancelled connection attempt fails with assorted errors (even a
        # DNSLookupError): remember who stopped it to report the right one.
        stopped_by = []

        def stop(reason: str) -> None:
            stopped_by.append(reason)
            request.cancel()

        guard: Deferred = Deferred(lambda _: stop("caller"))
        request.chainDeferred(guard)
        timeout = self._timeout if timeout is None else timeout
        timer = self._reactor.callLater(timeout, stop, "timeout")
        try:
            return await guard
        except Exception as error:
            if stopped_by == ["caller"]:
                raise CancelledError() from None
            if stopped_by == ["timeout"]:
                raise EtcdUnavailable(f"{endpoint}: no answer within {timeout} s") from None
            if isinstance(error, (ResponseNeverReceived, RequestTransmissionFailed,
                                  RequestNotSent)):
                raise _ConnectionDropped(f"{endpoint}: connection dropped: {error}") from None
            if isinstance(error, (ConnectError, ConnectionClosed, ResponseFailed)):
                raise EtcdUnavailable(f"{endpoint}: {error}") from None
            raise
        finally:
            if timer.active():
                timer.cancel()


# --- watches -----------------------------------------------------------------


_RETRY_FIRST = 0.05
_RETRY_MAX = 2.0
_DECODER = json.JSONDecoder()


class _JSONStream(Protocol):
    """Splits a streamed HTTP body into JSON documents, however the reads cut
    them: one document may span many reads and one read may hold many.

    The gateway ends every document with a newline, and compact JSON never
    contains one, so a read without a newline cannot complete a document:
    parsing only then keeps a document that spans many reads linear to read.
    """

    def __init__(self, on_document: Callable[[dict], None]):
        self._on_document = on_document
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._pending: list[str] = []
        self._closing = False
        self.ended: Deferred[None] = Deferred()
        self.heard: Callable[[], object] = lambda: None

    def close(self) -> None:
        """Drop the connection; documents already received are not delivered."""
        self._closing = True
        self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        self.heard()
        text = self._text.decode(data)
        self._pending.append(text)
        if "\n" not in text:
            return
        buffer = "".join(self._pending)
        position = 0
        while not self._closing:
            position = WHITESPACE.match(buffer, position).end()
            if position == len(buffer):
                break
            try:
                document, position = _DECODER.raw_decode(buffer, position)
            except json.JSONDecodeError:
                break  # incomplete: the rest is still on its way
            self._on_document(document)
        self._pending = [buffer[position:]]

    def connectionLost(self, reason: Failure) -> None:
        if reason.check(ResponseDone):
            self.ended.callback(None)
        else:
            self.ended.errback(reason)


class Watch:
    """A running watch (see ``EtcdClient.watch``); ``stop()`` ends it."""

    def __init__(self, client: EtcdClient, request: dict, start_revision: int,
                 callback: Callable[[list[Event], int], object],
                 on_compacted: Callable[[int], object], clock: IReactorTime,
                 silence: float = WATCH_SILENCE):
        self._client = client
        self._silence = silence
        self._request = request
        self._key = _unb64(request["key"])  # for log messages
        self._next_revision = start_revision
        self._callback = callback
        self._on_compacted = on_compacted
        self._clock = clock
        self._stream: _JSONStream | None = None
        self._created = False
        self._ready_waiters: list[Deferred[None]] = []
        self._compact_revision = 0
        self._stopping = False
        self._silenced = False
        self._running: Deferred[None] | None = None

    @property
    def next_revision(self) -> int:
        """The revision the watch resumes from after a reconnection (0 until
        etcd has confirmed a watch started from "now")."""
        return self._next_revision

    async def ready(self) -> None:
        """Wait until etcd has created the watch: changes made after this
        returns are delivered."""
        if self._created:
            return
        waiter: Deferred[None] = Deferred()
        self._ready_waiters.append(waiter)
        await waiter

    async def stop(self) -> None:
        """Stop watching and close the stream; returns once it is closed.
        No callback is called after stop()."""
        if self._stopping:
            return
        self._stopping = True
        self._client._watches.discard(self)
        if self._stream is not None:
            self._stream.close()
        else:
            self._running.cancel()
        await self._running
        for waiter in self._ready_waiters:
            waiter.cancel()

    def _start(self) -> None:
        self._running = Deferred.fromCoroutine(self._run())
        self._running.addErrback(self._crashed)

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            log.failure("etcd watch on {key!r} crashed", failure, key=self._key)

    async def _run(self) -> None:
        delay = _RETRY_FIRST
        while True:
            try:
                await self._follow_stream()
                interruption = "stream ended"
            except (EtcdError, ResponseFailed, PotentialDataLoss, ConnectionClosed) as error:
                interruption = error
            if self._stopping:
                return
            if self._compact_revision:
                self._client._watches.discard(self)
                self._on_compacted(self._compact_revision)
                return
            if self._silenced:
                self._silenced = False
                continue
            if self._created:
                delay = _RETRY_FIRST
            log.warn("etcd watch on {key!r} interrupted ({interruption}); resuming at revision "
                     "{revision} in {delay} s", key=self._key,
                     interruption=interruption, revision=self._next_revision, delay=delay)
            await deferLater(self._clock, delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def _follow_stream(self) -> None:
        self._created = False
        response = await self._client._open_stream("/v3/watch", self._create_request())
        self._stream = stream = _JSONStream(self._on_document)
        watchdog = self._clock.callLater(self._silence, self._silent, stream)
        stream.heard = lambda: watchdog.reset(self._silence)
        try:
            response.deliverBody(stream)
            await stream.ended
        finally:
            if watchdog.active():
                watchdog.cancel()
            self._stream = None

    def _silent(self, stream: _JSONStream) -> None:
        log.debug("etcd watch on {key!r} silent for {silence} s; reopening it", key=self._key,
                  silence=self._silence)
        self._silenced = True
        stream.close()

    def _create_request(self) -> dict:
        request = dict(self._request)
        if self._next_revision:
            request["start_revision"] = self._next_revision
        return {"create_request": request}

    def _on_document(self, document: dict) -> None:
        if self._stopping or self._compact_revision:
            return
        result = document.get("result")
        if result is None:
            log.warn("etcd watch stream error: {error}", error=_error_from_reply(None, document))
            self._stream.close()
            return
        if "compact_revision" in result:
            self._compact_revision = int(result["compact_revision"])
            self._stream.close()
            return
        if result.get("canceled"):
            log.warn("etcd cancelled watch on {key!r}: {reason}", key=self._key,
                     reason=result.get("cancel_reason", ""))
            self._stream.close()
            return
        revision = _header_revision(result)
        if result.get("created"):
            self._created = True
            if not self._next_revision:
                self._next_revision = revision + 1
            waiters, self._ready_waiters = self._ready_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        if "events" in result:
            events = [_event(event) for event in result["events"]]
            self._next_revision = events[-1].kv.mod_revision + 1
            try:
                self._callback(events, revision)
            except Exception:
                log.failure("etcd watch callback failed on {count} events", count=len(events))
