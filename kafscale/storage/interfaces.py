"""The object store the broker keeps its segments in, and its failures."""

from typing import NamedTuple

from zope.interface import Interface


class ObjectInfo(NamedTuple):
    key: str
    size: int
    modified_ms: int | None = None
    """When the object was written (unix ms), where the store says."""


class ObjectStoreError(Exception):
    """An object store operation failed.

    Subclasses say why; a bare ObjectStoreError (or an S3 error code the
    store has no name for) is not known to be transient.
    """

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(message)


class ObjectNotFound(ObjectStoreError):
    """The key names no object."""

    def __init__(self, key: str):
        super().__init__(f"no object at {key!r}", key)


class ObjectStoreUnavailable(ObjectStoreError):
    """The store could not be reached or kept failing after retries.

    Transient by nature: the same operation may succeed later, so a produce
    or fetch that meets it answers with a retriable error.
    """


def check_byte_range(start: int | None, end: int | None) -> None:
    """Refuse the ranges :meth:`IObjectStore.get` calls a ValueError."""
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise ValueError(f"negative byte range [{start}, {end})")
    if end is not None and end <= (start or 0):
        raise ValueError(f"empty byte range [{start}, {end})")


class IObjectStore(Interface):
    """A flat namespace of immutable byte objects (S3 semantics).

    Keys are "/"-separated strings without a leading "/"; every method
    returns a Deferred. Failures are :class:`ObjectStoreError` subclasses.
    """

    def put(key, data):
        """Store ``data`` (bytes-like) at ``key``, replacing any object there.

        Atomic: readers see the old object or the whole new one, never a
        part. Fires with None once the object is durable.
        """

    def get(key, start=None, end=None):
        """Fire with the bytes of the object at ``key``, or of a range of it.

        ``start`` and ``end`` are byte positions as in a Python slice: ``end``
        is exclusive, either may be omitted, and a range running past the end
        of the object is clipped to it (a start at or beyond the end gives
        ``b""``). An empty or negative range (``end <= start``, or a negative
        bound) is a ValueError. Fails with :class:`ObjectNotFound` when there
        is no such object.
        """

    def head(key):
        """Fire with the size in bytes of the object at ``key``, or fail
        with :class:`ObjectNotFound`."""

    def list(prefix):
        """Fire with every object whose key starts with ``prefix`` (a plain
        string prefix, not a directory), as a list of :class:`ObjectInfo`
        sorted by key, with the time each was written."""

    def delete(key):
        """Remove the object at ``key``; removing a missing object succeeds."""

    def close():
        """Release the store's connections and threads; fires when done."""


# Outcomes of object store requests, as IObjectStoreRequests hears them.
OK = "ok"
NOT_FOUND = "not_found"
CLIENT_ERROR = "client_error"
SERVER_ERROR = "server_error"
UNANSWERED = "unanswered"
"""Sent (or not) but never answered: refused, dropped or timed out."""


class IObjectStoreRequests(Interface):
    """Told of every request an object store makes of its backend (for S3,
    every HTTP request, retries and multipart parts included): what the
    provider bills."""

    def requested(operation, outcome, seconds, sent_bytes, received_bytes):
        """One request: ``operation`` in S3's API names (PutObject,
        GetObject, HeadObject, ListObjectsV2, DeleteObject, UploadPart, ...),
        ``outcome`` one of the outcome names above, how long it took, and
        the body bytes sent and received."""


class IPartitionHolder(Interface):
    """What a PartitionLog asks of whoever holds it for the broker."""

    def may_append(topic, partition):
        """Whether the broker certainly still owns the partition: asked
        before every append, since a broker whose hold is in doubt must stop
        taking writes before another can claim them. Reads go on regardless,
        committed data being valid whoever owns the partition next."""

    def deposed(partition_log):
        """``partition_log`` found that another owner claimed its partition:
        it refuses appends from now on and should be let go of."""
