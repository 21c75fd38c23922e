"""Request handlers, one module per Kafka API area.

Each handler is an ``async def`` taking a :class:`Request` and returning the
response body as a dict (or ``None`` when the protocol wants no answer, as
for acks=0 produce). ApiVersions advertises exactly what is registered here.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from kafscale.protocol.messages import valid_versions
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.segment import CorruptSegment

# What reading committed segments raises when the object store fails or
# holds a damaged object: answered KAFKA_STORAGE_ERROR for that partition.
STORAGE_ERRORS = (ObjectStoreError, CorruptSegment)


@dataclass(slots=True)
class Request:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: dict
    broker: Any
    client_host: str


@dataclass(frozen=True, slots=True)
class Handler:
    api_key: int
    min_version: int
    max_version: int
    handle: Callable[[Request], Awaitable[dict | None]]


HANDLERS: dict[int, Handler] = {}


def handles(api_key, min_version=None, max_version=None):
    """Register the decorated coroutine as the handler of ``api_key`` for
    the given versions (default: every version in the schema)."""
    schema_min, schema_max = valid_versions(api_key)

    def register(handle):
        HANDLERS[api_key] = Handler(
            api_key,
            schema_min if min_version is None else min_version,
            schema_max if max_version is None else max_version,
            handle,
        )
        return handle

    return register


def named_more_than_once(names) -> list:
    """The names a request repeats, in order of first appearance: Kafka
    refuses each of them with INVALID_REQUEST."""
    return [name for name, count in Counter(names).items() if count > 1]


from kafscale.handlers import api_versions, cluster, configs, delete_records, fetch, find_coordinator, groups, init_producer_id, list_offsets, metadata, offset_for_leader_epoch, offsets, partitions, produce, topics  # noqa: E402,F401  (they register themselves)
