"""Request handlers, one module per Kafka API area.

Each handler is an ``async def`` taking a :class:`Request` and returning the
response body as a dict (or ``None`` when the protocol wants no answer, as
for acks=0 produce). ApiVersions advertises exactly what is registered here.
"""

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from kafscale.protocol.messages import valid_versions


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


from kafscale.handlers import api_versions, cluster, configs, delete_records, fetch, find_coordinator, groups, init_producer_id, list_offsets, metadata, offset_for_leader_epoch, offsets, partitions, produce, topics  # noqa: E402,F401  (they register themselves)
