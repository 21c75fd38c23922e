"""ApiVersions, v0-4: the API keys and version ranges this broker answers,
exactly the dispatch table's (:mod:`kafscale.handlers.dispatch`).

Versions: v3 adds the client's software name and version, which we accept
and ignore, and tagged fields; v4 differs only in what the client may
expect. A request at a version we do not speak is answered, as KIP-511 asks,
with UNSUPPORTED_VERSION in the v0 layout, which every client can read,
listing our ranges so the client retries with one of them.

Departures from Kafka: no supported features or finalized feature levels
are advertised (nothing here depends on them), and throttling never happens.
"""

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey, encode_response


def _api_keys(handlers):
    return [
        {"api_key": h.api_key, "min_version": h.min_version, "max_version": h.max_version}
        for h in sorted(handlers.values(), key=lambda h: h.api_key)
    ]


def answering_from(handlers):
    """The ApiVersions handler for the dispatch table ``handlers``."""

    async def handle(request):
        return {"error_code": ErrorCode.NONE, "api_keys": _api_keys(handlers), "throttle_time_ms": 0}

    return handle


def unsupported_version_response(handlers, correlation_id):
    """The encoded answer to an ApiVersions version we do not speak: error
    35 in the v0 layout, listing the ranges in ``handlers``."""
    body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": _api_keys(handlers)}
    return encode_response(ApiKey.API_VERSIONS, 0, correlation_id, body)
