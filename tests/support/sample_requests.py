"""Requests of every API and version, built from Apache Kafka's schemas:
each array holds one element, each string names the same sample topic, so
that a handler meets every field its version has (sweeps and fuzzing)."""

from kafscale.protocol.messages import ApiKey, encode_request
from kafscale.protocol.schema import load_messages
from tests.support.records import simple_batch

_REQUESTS = {m.api_key: m for m in load_messages() if m.kind == "request"}

# Values a default of zero would make degenerate: acks=0 gets no answer.
_CHOSEN = {(ApiKey.PRODUCE, "acks"): -1}


def sample_request(api_key, version, name="sample"):
    """The body of a request to ``api_key`` at ``version`` that names ``name``."""
    return _struct(api_key, _REQUESTS[api_key].fields, version, name)


def sample_frame(api_key, version, correlation_id, name="sample"):
    return encode_request(api_key, version, correlation_id, "sample", sample_request(api_key, version, name))


def _struct(api_key, fields, version, name):
    return {field.key: _CHOSEN.get((api_key, field.key)) if (api_key, field.key) in _CHOSEN
            else _value(api_key, field, version, name)
            for field in fields if version in field.versions}


def _value(api_key, field, version, name):
    if field.is_struct:
        one = _struct(api_key, field.fields, version, name)
        return [one] if field.element is not None else one
    if field.element is not None:
        return [_scalar(field.element, name)]
    return _scalar(field.type, name)


def _scalar(type_, name):
    if type_ == "string":
        return name
    if type_ == "records":
        return simple_batch(1)
    if type_ == "bytes":
        return b""
    if type_ == "bool":
        return False
    if type_ == "float64":
        return 0.0
    if type_ == "uuid":
        import uuid

        return uuid.UUID(int=0)
    return 0
