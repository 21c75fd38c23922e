"""ApiVersions: what this broker can answer, exactly."""

from kafscale.handlers import HANDLERS, handles
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey, encode_response


def _api_keys():
    return [
        {"api_key": h.api_key, "min_version": h.min_version, "max_version": h.max_version}
        for h in sorted(HANDLERS.values(), key=lambda h: h.api_key)
    ]


@handles(ApiKey.API_VERSIONS)
async def api_versions(request):
    return {"error_code": ErrorCode.NONE, "api_keys": _api_keys(), "throttle_time_ms": 0}


def unsupported_version_response(correlation_id):
    """The answer to an ApiVersions version we do not speak: error 35 in the
    v0 layout, which every client can read, listing the ranges we do speak
    so the client retries with one of them (KIP-511)."""
    body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": _api_keys()}
    return encode_response(ApiKey.API_VERSIONS, 0, correlation_id, body)
