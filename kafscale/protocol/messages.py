"""The registry of Kafka messages, and request/response framing.

Every request, response and data struct in Apache Kafka's schemas has a
:class:`Codec` per version.  Schemas are parsed at import; each version's
reader and writer are compiled on first use (about 1 ms each, 490 versions
in all) and kept.
"""

import enum
import sys
import struct
from functools import cache
from typing import NamedTuple

from kafscale.protocol.schema import DecodeError, compile_message, load_messages


class ApiKey(enum.IntEnum):
    """The API keys of every request in the schemas."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_QUORUM = 55
    UPDATE_FEATURES = 57
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    LIST_CONFIG_RESOURCES = 74
    DESCRIBE_TOPIC_PARTITIONS = 75


class UnsupportedVersion(KeyError):
    """No schema for this API key, or not at this version.

    Raised by :func:`decode_request_header` with the header's fixed fields
    attached, so that the server can still answer the request.
    """

    def __init__(self, api_key, api_version, correlation_id=None):
        super().__init__(api_key, api_version)
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id

    def __str__(self):
        return f"unsupported API key {self.api_key} version {self.api_version}"


class Codec:
    """Reads and writes one message at one version."""

    __slots__ = ("name", "version", "flexible", "_read", "_write", "_default")

    def __init__(self, message, version):
        self.name = message.name
        self.version = version
        self.flexible = version in message.flexible_versions
        self._read, self._write, self._default = compile_message(message, version)

    def decode(self, buf, offset=0):
        """Decode the message at ``offset``; return (message dict, end offset).

        ``records`` fields are memoryview slices of ``buf``.  Raises
        :class:`DecodeError` for truncated or malformed input.
        """
        message, end, _ = self.decode_bounded(buf, offset, sys.maxsize)
        return message, end

    def decode_bounded(self, buf, offset, max_elements):
        """Decode like :meth:`decode`, refusing (:class:`TooManyElements`,
        before building them) more than ``max_elements`` array elements in
        all; -> (message dict, end offset, array elements decoded)."""
        if type(buf) is not memoryview:
            buf = memoryview(buf)
        budget = [max_elements]
        try:
            message, end = self._read(buf, offset, budget)
        except (struct.error, IndexError, UnicodeDecodeError) as error:
            raise DecodeError(f"{self.name} v{self.version}: {error}") from error
        if end > len(buf):
            raise DecodeError(f"{self.name} v{self.version}: truncated")
        return message, end, max_elements - budget[0]

    def encode(self, message):
        """Encode a message dict; missing keys take the schema default."""
        parts = []
        self._write(message, parts)
        return b"".join(parts)

    def encode_parts(self, message, parts):
        """Append the encoding of ``message`` to the list ``parts``, uncopied."""
        self._write(message, parts)

    def default(self):
        """A message dict holding every field's default."""
        return self._default()

    def __repr__(self):
        return f"<Codec {self.name} v{self.version}>"


_MESSAGES = load_messages()
_REQUESTS = {m.api_key: m for m in _MESSAGES if m.kind == "request"}
_RESPONSES = {m.api_key: m for m in _MESSAGES if m.kind == "response"}
_OTHERS = {m.name: m for m in _MESSAGES if m.kind in ("data", "header")}


@cache
def _codec(message, version):
    return Codec(message, version)


def _lookup(registry, api_key, version):
    message = registry.get(api_key)
    if message is None or version not in message.valid_versions:
        raise UnsupportedVersion(api_key, version)
    return _codec(message, version)


def request_codec(api_key, version):
    """The codec of a request body; raises :class:`UnsupportedVersion`."""
    return _lookup(_REQUESTS, api_key, version)


def response_codec(api_key, version):
    """The codec of a response body; raises :class:`UnsupportedVersion`."""
    return _lookup(_RESPONSES, api_key, version)


def data_codec(name, version):
    """The codec of a struct outside requests, e.g. ``ConsumerProtocolAssignment``."""
    return _lookup(_OTHERS, name, version)


def valid_versions(api_key):
    """(lowest, highest) version of an API key, from its request schema."""
    try:
        versions = _REQUESTS[api_key].valid_versions
    except KeyError:
        raise UnsupportedVersion(api_key, None) from None
    return versions.low, versions.high


def api_keys():
    """Every API key that has a schema, ascending."""
    return sorted(_REQUESTS)


def is_flexible(api_key, version):
    """Whether this request version uses compact encodings and tagged fields."""
    return version in _REQUESTS[api_key].flexible_versions


# ---------------------------------------------------------------------------
# Headers and frames


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int  # where the request body starts in the decoded buffer


_HEADER_PREFIX = struct.Struct(">hhi")
_SIZE_AND_CORRELATION = struct.Struct(">ii")
_EMPTY_TAGGED_FIELDS = b"\x00"


def _request_header_version(api_key, api_version):
    # Header v0 (no client id) is only for ControlledShutdown v0, which has
    # no schema any more, so every supported request has v1 or v2.
    return 2 if is_flexible(api_key, api_version) else 1


def decode_request_header(buf):
    """Decode the header at the start of a request frame (after its size).

    Raises :class:`UnsupportedVersion` for an unknown API key or version,
    carrying ``api_key``, ``api_version`` and ``correlation_id``, and
    :class:`DecodeError` for a header too short or garbled.
    """
    try:
        api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(buf, 0)
    except struct.error as error:
        raise DecodeError(f"request header: {error}") from error
    request = _REQUESTS.get(api_key)
    if request is None or api_version not in request.valid_versions:
        raise UnsupportedVersion(api_key, api_version, correlation_id)
    header_codec = data_codec("RequestHeader", _request_header_version(api_key, api_version))
    header, body_offset = header_codec.decode(buf)
    return RequestHeader(api_key, api_version, correlation_id, header["client_id"], body_offset)


def _response_header_flexible(api_key, api_version):
    # ApiVersions answers with header v0 even in flexible versions, so that a
    # client that does not know the broker's versions yet can read it.
    return api_key != ApiKey.API_VERSIONS and api_version in _RESPONSES[api_key].flexible_versions


def encode_response_parts(api_key, api_version, correlation_id, body):
    """A response frame as a list of bytes-like parts, size prefix first.

    The parts can go to ``transport.writeSequence`` so that records are
    never copied.
    """
    codec = response_codec(api_key, api_version)
    parts = [b""]
    if _response_header_flexible(api_key, api_version):
        parts.append(_EMPTY_TAGGED_FIELDS)
    codec.encode_parts(body, parts)
    size = 4 + sum(map(len, parts))
    parts[0] = _SIZE_AND_CORRELATION.pack(size, correlation_id)
    return parts


def encode_response(api_key, api_version, correlation_id, body):
    """A full response frame, size prefix included."""
    return b"".join(encode_response_parts(api_key, api_version, correlation_id, body))


def encode_request(api_key, api_version, correlation_id, client_id, body):
    """A full request frame, size prefix included (for tests and admin tools)."""
    codec = request_codec(api_key, api_version)
    header = {
        "request_api_key": api_key,
        "request_api_version": api_version,
        "correlation_id": correlation_id,
        "client_id": client_id,
    }
    parts = [b""]
    data_codec("RequestHeader", _request_header_version(api_key, api_version)).encode_parts(header, parts)
    codec.encode_parts(body, parts)
    parts[0] = struct.pack(">i", sum(map(len, parts)))
    return b"".join(parts)


def decode_response_header(buf, api_key, api_version):
    """(correlation id, body offset) of a response frame read after its size."""
    (correlation_id,) = struct.unpack_from(">i", buf, 0)
    if _response_header_flexible(api_key, api_version):
        return correlation_id, data_codec("ResponseHeader", 1).decode(buf)[1]
    return correlation_id, 4
