"""An S3 object store: botocore builds and signs requests, treq sends them.

Nothing here blocks the reactor: botocore only computes SigV4 signatures
(path-style URLs), and every request goes out over one persistent treq
connection pool whose concurrency a DeferredSemaphore bounds. The store
retries transient failures itself (S3 has no built-in retries), uploads large
objects in parts, and turns S3's error XML into named exceptions.
"""

import hashlib
from datetime import datetime
import os
import random
import time
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import botocore.session
import treq
from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from treq.client import HTTPClient
from twisted.internet import tcp
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    TimeoutError,
)
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
)
from zope.interface import implementer

from kafscale.http import BytesBody
from kafscale.log import logger
from kafscale.storage.interfaces import (
    CLIENT_ERROR,
    NOT_FOUND,
    OK,
    SERVER_ERROR,
    UNANSWERED,
    IObjectStore,
    IObjectStoreRequests,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    check_byte_range,
)

log = logger("kafscale.storage.s3")

MiB = 1 << 20
DEFAULT_REGION = "us-east-1"
MULTIPART_THRESHOLD = 8 * MiB
PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
# Bodies up to this size are hashed on the reactor thread (microseconds);
# larger ones in a worker thread, where hashlib releases the GIL.
_INLINE_HASH_LIMIT = 64 * 1024

_RETRIABLE_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",  # the retry is signed with a fresh timestamp
    }
)
# Errors a request can meet on the way that say nothing about the request.
_CONNECTION_FAILURES = (
    ConnectError,
    ConnectionClosed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    TimeoutError,
)
# Object bytes are opaque; an explicit type also keeps servers from parsing
# a body as a form.
_OBJECT_HEADERS = {"Content-Type": "application/octet-stream"}
# Error codes for bodiless error responses (HEAD has none).
_STATUS_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class S3Error(ObjectStoreError):
    """S3 answered with an error; ``code`` is S3's error code."""

    def __init__(self, status, code, message, key=None, request_id=None):
        self.status = status
        self.code = code
        self.request_id = request_id
        super().__init__(f"S3 {code} (HTTP {status}): {message}", key)


class NoSuchBucket(S3Error):
    """The configured bucket does not exist."""


class AccessDenied(S3Error):
    """Credentials missing, wrong or not allowed (AccessDenied,
    InvalidAccessKeyId, SignatureDoesNotMatch, expired tokens)."""


class NoSuchUpload(S3Error):
    """A multipart upload was aborted or completed under our feet."""


_NAMED_ERRORS = {
    "NoSuchBucket": NoSuchBucket,
    "AccessDenied": AccessDenied,
    "InvalidAccessKeyId": AccessDenied,
    "SignatureDoesNotMatch": AccessDenied,
    "ExpiredToken": AccessDenied,
    "InvalidToken": AccessDenied,
    "NoSuchUpload": NoSuchUpload,
}


def raise_tcp_read_size(size: int = MiB):
    """Let every TCP connection in this process read up to ``size`` bytes at once.

    Twisted reads 64 KiB per call by default, which makes large S3 GETs
    CPU-bound on the reactor thread (measured: 8 MiB x 4 GETs went from ~600
    to ~976 MiB/s at 1 MiB). It is a process-wide class attribute, so the
    application calls this once at start-up rather than this module at import.
    """
    tcp.Connection.bufferSize = size


class _PrecomputedPayloadAuth(S3SigV4Auth):
    """SigV4 for S3 over the payload hash the store computed once per body.

    botocore would otherwise hash the body on every signing over http:// and
    ignore a hash header set by hand.
    """

    def payload(self, request):
        return request.context["payload_hash"]


@implementer(IObjectStore)
class S3ObjectStore:
    """:class:`IObjectStore` over one S3 bucket, keys under ``prefix``.

    Every argument left as None falls back to the standard AWS environment
    variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
    ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``); the endpoint defaults to
    AWS's regional one. Without keys there, credentials come from botocore's
    chain: the shared credentials and config files (``AWS_PROFILE``),
    web identity, container and instance roles; credentials that expire
    are refreshed off the reactor before a request that needs them. ``prefix`` is prepended to every key and stripped
    from listed keys.

    ``sign_payload`` puts the body's SHA-256 into the signature; without it
    bodies are sent as UNSIGNED-PAYLOAD (headers are still signed), which
    saves hashing every byte while segments carry their own CRC-32C.
    Transient failures are retried ``max_attempts`` times in all, with
    exponential backoff and jitter from ``backoff`` seconds up to
    ``max_backoff``, then fail with :class:`ObjectStoreUnavailable`. Each
    attempt (request and response body) must finish within
    ``request_timeout`` seconds. ``list_page_size`` is the number of keys
    asked for per ListObjectsV2 page (S3's maximum is 1000). ``requests``
    (an IObjectStoreRequests), if given, hears of every HTTP request sent,
    retries and multipart parts included: what S3 bills.
    """

    def __init__(
        self,
        bucket: str,
        endpoint: str | None = None,
        region: str | None = None,
        prefix: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        max_connections: int = 16,
        max_attempts: int = 6,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        request_timeout: float = 30.0,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        sign_payload: bool = False,
        list_page_size: int = 1000,
        requests: IObjectStoreRequests | None = None,
        reactor=None,
        environ=os.environ,
    ):
        if reactor is None:
            from twisted.internet import reactor
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        if multipart_threshold < part_size:
            raise ValueError("the multipart threshold must be at least one part")
        access_key = access_key or environ.get("AWS_ACCESS_KEY_ID")
        secret_key = secret_key or environ.get("AWS_SECRET_ACCESS_KEY")
        session_token = session_token or environ.get("AWS_SESSION_TOKEN")
        if access_key and secret_key:
            credentials = Credentials(access_key, secret_key, session_token)
        else:
            # Read once, at start (the reactor is not running yet).
            credentials = botocore.session.Session().get_credentials()
            if credentials is None:
                raise ValueError(
                    "S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in the"
                    " shared credentials file, or run with a container or instance role"
                )
        self.region = (
            region
            or environ.get("AWS_REGION")
            or environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        self.endpoint = (
            endpoint
            or environ.get("AWS_ENDPOINT_URL_S3")
            or environ.get("AWS_ENDPOINT_URL")
            or f"https://s3.{self.region}.amazonaws.com"
        ).rstrip("/")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._bucket_url = f"{self.endpoint}/{quote(bucket, safe='')}"
        self._credentials = credentials
        self._auth = _PrecomputedPayloadAuth(credentials, "s3", self.region)
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_connections
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._slots = DeferredSemaphore(max_connections)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._request_timeout = request_timeout
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._sign_payload = sign_payload
        self._list_page_size = list_page_size
        self._requests = requests

    def __repr__(self):
        return f"<S3ObjectStore {self.endpoint}/{self.bucket}/{self.prefix}>"

    # IObjectStore

    def put(self, key, data):
        return Deferred.fromCoroutine(self._put(key, data))

    def get(self, key, start=None, end=None):
        return Deferred.fromCoroutine(self._get(key, start, end))

    def head(self, key):
        return Deferred.fromCoroutine(self._head(key))

    def list(self, prefix):
        return Deferred.fromCoroutine(self._list(prefix))

    def delete(self, key):
        return Deferred.fromCoroutine(self._delete(key))

    def close(self):
        return self._pool.closeCachedConnections()

    def create_bucket(self):
        """Create the bucket (not part of IObjectStore: for tests and
        set-up tools); succeeds if this account already owns it."""
        return Deferred.fromCoroutine(self._create_bucket())

    # Operations

    async def _put(self, key, data):
        name = self._name(key)
        view = memoryview(data).cast("B")
        if len(view) > self._multipart_threshold:
            await self._put_multipart(key, name, view)
        else:
            body = data if isinstance(data, bytes) else view
            await self._request("PutObject", "PUT", key, name, headers=_OBJECT_HEADERS, body=body)

    async def _get(self, key, start, end):
        name = self._name(key)
        check_byte_range(start, end)
        headers = {}
        if start is not None or end is not None:
            last = "" if end is None else str(end - 1)
            headers["Range"] = f"bytes={start or 0}-{last}"
        status, _, content = await self._request(
            "GetObject", "GET", key, name, headers=headers, expect=(200, 206, 416)
        )
        if status == 416:  # the range starts beyond the object
            return b""
        if status == 200 and headers:  # a server that ignored the range
            return content[start:end]
        return content

    async def _head(self, key):
        _, headers, _ = await self._request("HeadObject", "HEAD", key, self._name(key))
        return int(headers.getRawHeaders(b"content-length")[0])

    async def _list(self, prefix):
        objects = []
        query = {
            "list-type": "2",
            "max-keys": str(self._list_page_size),
            "prefix": self.prefix + prefix,
        }
        while True:
            _, _, content = await self._request("ListObjectsV2", "GET", prefix, None, query=query)
            root = _parse_xml(content, prefix)
            for element in root:
                if _local_name(element.tag) == "Contents":
                    fields = {_local_name(child.tag): child.text for child in element}
                    objects.append(
                        ObjectInfo(fields["Key"][len(self.prefix) :], int(fields["Size"]),
                                   _unix_ms(fields.get("LastModified")))
                    )
            token = _child_text(root, "NextContinuationToken")
            if _child_text(root, "IsTruncated") != "true" or not token:
                return objects
            query = {**query, "continuation-token": token}

    async def _delete(self, key):
        await self._request("DeleteObject", "DELETE", key, self._name(key), expect=(200, 204))

    async def _create_bucket(self):
        body = b""
        if self.region != DEFAULT_REGION:
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{escape(self.region)}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode()
        try:
            await self._request("CreateBucket", "PUT", None, None, body=body)
        except S3Error as e:
            if e.code != "BucketAlreadyOwnedByYou":
                raise

    async def _put_multipart(self, key, name, view):
        part_size = max(self._part_size, -(-len(view) // MAX_PARTS))
        _, _, content = await self._request("CreateMultipartUpload", "POST", key, name, query={"uploads": ""})
        upload_id = _child_text(_parse_xml(content, key), "UploadId")
        if not upload_id:
            raise ObjectStoreError(f"S3 started an upload of {key!r} without an UploadId", key)
        try:
            uploads = [
                Deferred.fromCoroutine(
                    self._upload_part(
                        key, name, upload_id, number, view[offset : offset + part_size]
                    )
                )
                for number, offset in enumerate(range(0, len(view), part_size), start=1)
            ]
            # Let every part settle before deciding, so an abort never races
            # parts still in flight.
            results = await DeferredList(uploads, consumeErrors=True)
            for succeeded, result in results:
                if not succeeded:
                    result.raiseException()
            parts = "".join(
                f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
                for number, (_, etag) in enumerate(results, start=1)
            )
            body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            await self._request(
                "CompleteMultipartUpload", "POST", key, name, query={"uploadId": upload_id}, body=body,
                error_in_body=True
            )
        except BaseException:
            await self._abort_multipart(key, name, upload_id)
            raise

    async def _upload_part(self, key, name, upload_id, number, part):
        _, headers, _ = await self._request(
            "UploadPart",
            "PUT",
            key,
            name,
            query={"partNumber": str(number), "uploadId": upload_id},
            headers=_OBJECT_HEADERS,
            body=part,
        )
        etag = headers.getRawHeaders(b"etag")
        if not etag:
            raise ObjectStoreError(f"S3 answered part {number} of {key!r} without an ETag", key)
        return etag[0].decode("ascii")

    async def _abort_multipart(self, key, name, upload_id):
        try:
            await self._request(
                "AbortMultipartUpload", "DELETE", key, name, query={"uploadId": upload_id},
                expect=(200, 204, 404)
            )
        except ObjectStoreError as e:
            log.warn(
                "Could not abort multipart upload {upload_id} of {key!r}: {error}; "
                "a bucket lifecycle rule must clean it up",
                upload_id=upload_id,
                key=key,
                error=e,
            )

    # The request machinery

    def _name(self, key):
        if not key or key.startswith("/"):
            raise ValueError(f"invalid object key {key!r}")
        return self.prefix + key

    async def _request(
        self,
        operation,
        method,
        key,
        name,
        query=None,
        headers=None,
        body=None,
        expect=(200,),
        error_in_body=False,
    ):
        """Send one S3 request, retrying transient failures.

        ``operation`` is the S3 API's name for it (PutObject, ...), each
        attempt reported under it to ``requests``. ``key`` is the caller's key (for errors); ``name`` the full object
        name within the bucket, or None for the bucket itself. Fires with
        ``(status, response headers, body)`` for a status in ``expect``.
        """
        url = self._bucket_url if name is None else f"{self._bucket_url}/{quote(name, safe='/~')}"
        if query:
            url += "?" + "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
            )
        payload_hash = await self._payload_hash(body)
        attempt = 0
        while True:
            attempt += 1
            try:
                status, response_headers, content = await self._attempt(
                    operation, method, url, headers or {}, body, payload_hash
                )
            except _CONNECTION_FAILURES as e:
                error = ObjectStoreUnavailable(f"S3 {method} {key!r}: {_describe(e)}", key)
            else:
                if status in expect and not (error_in_body and _is_error_document(content)):
                    return status, response_headers, content
                error = _error_from_response(status, content, key)
                if not _is_transient(error):
                    raise error
            if attempt >= self._max_attempts:
                raise ObjectStoreUnavailable(
                    f"S3 {method} {key!r} failed {attempt} times, last: {error}", key
                ) from error
            delay = random.uniform(0.5, 1.0) * min(
                self._max_backoff, self._backoff * 2 ** (attempt - 1)
            )
            log.warn(
                "S3 {method} {key!r} failed ({error}); attempt {next} in {delay:.2f}s",
                method=method,
                key=key,
                error=error,
                next=attempt + 1,
                delay=delay,
            )
            await deferLater(self._reactor, delay)

    async def _attempt(self, operation, method, url, headers, body, payload_hash):
        credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            # Signing would refresh them itself, blocking on the network.
            await deferToThread(credentials.get_frozen_credentials)
        await self._slots.acquire()
        started = time.monotonic()
        sent = 0 if body is None else len(body)
        try:
            response = self._send(method, url, headers, body, payload_hash)
            response.addTimeout(self._request_timeout, self._reactor)
            status, response_headers, content = await response
        except BaseException:
            if self._requests is not None:
                self._requests.requested(operation, UNANSWERED, time.monotonic() - started, sent, 0)
            raise
        else:
            if self._requests is not None:
                self._requests.requested(operation, _outcome(status), time.monotonic() - started, sent,
                                         len(content))
            return status, response_headers, content
        finally:
            self._slots.release()

    def _send(self, method, url, headers, body, payload_hash):
        # Signed afresh for every attempt: a retry after RequestTimeTooSkewed
        # needs a new timestamp.
        request = AWSRequest(method=method, url=url, headers=headers)
        request.context["payload_hash"] = payload_hash
        self._auth.add_auth(request)
        producer = None
        if body is not None:
            producer = BytesBody(body if isinstance(body, bytes) else bytes(body))

        async def exchange():
            response = await self._http.request(
                method,
                url,
                headers={name: [value] for name, value in request.headers.items()},
                data=producer,
                allow_redirects=False,
            )
            content = b"" if method == "HEAD" else await treq.content(response)
            return response.code, response.headers, content

        return Deferred.fromCoroutine(exchange())

    async def _payload_hash(self, body):
        if body is None or len(body) == 0:
            return hashlib.sha256(b"").hexdigest()
        if not self._sign_payload:
            return UNSIGNED_PAYLOAD
        if len(body) <= _INLINE_HASH_LIMIT:
            return hashlib.sha256(body).hexdigest()
        return await deferToThread(lambda: hashlib.sha256(body).hexdigest())


def _outcome(status):
    """The outcome a request answered with ``status`` is reported under."""
    if status == 404:
        return NOT_FOUND
    if 200 <= status < 300 or status == 416:  # 416: a range past the end, answered b""
        return OK
    return CLIENT_ERROR if status < 500 else SERVER_ERROR


def _error_from_response(status, content, key):
    code = message = request_id = None
    if _is_error_document(content):
        root = ElementTree.fromstring(content)
        code = _child_text(root, "Code")
        message = _child_text(root, "Message")
        request_id = _child_text(root, "RequestId")
    code = code or _STATUS_CODES.get(status, f"HTTP{status}")
    if code == "NoSuchKey":
        return ObjectNotFound(key)
    error_class = _NAMED_ERRORS.get(code, S3Error)
    return error_class(status, code, message or "(no message)", key, request_id)


def _unix_ms(timestamp):
    """An S3 LastModified (ISO 8601, like 2026-12-02T20:07:37.000Z) in unix
    ms, or None."""
    if not timestamp:
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


def _is_transient(error):
    return isinstance(error, S3Error) and (error.code in _RETRIABLE_CODES or error.status >= 500)


def _is_error_document(content):
    if not content.lstrip().startswith(b"<"):
        return False
    try:
        return _local_name(ElementTree.fromstring(content).tag) == "Error"
    except ElementTree.ParseError:
        return False


def _parse_xml(content, key):
    try:
        return ElementTree.fromstring(content)
    except ElementTree.ParseError as e:
        raise ObjectStoreError(f"S3 answered {key!r} with malformed XML: {e}", key) from e


def _local_name(tag):
    return tag.rpartition("}")[2]


def _child_text(element, name):
    for child in element:
        if _local_name(child.tag) == name:
            return child.text
    return None


def _describe(error):
    """Name a connection-level failure; Twisted's wrappers hide their reasons."""
    if isinstance(error, ResponseFailed):
        return f"{type(error).__name__}({', '.join(_describe(r.value) for r in error.reasons)})"
    return str(error) or type(error).__name__
