"""Client quotas over the wire: AlterClientQuotas and DescribeClientQuotas
requests, as admin tools send them (neither Python client has them)."""

from kafscale.protocol.messages import ApiKey
from tests.support.wire import Connection


def alter_quotas(bootstrap, entries, validate_only=False, version=1):
    """``entries``: [(entity [(type, name)], {key: value or None to remove})]
    -> [(error code, message)] per entry."""
    connection = Connection(bootstrap)
    try:
        answer = connection.request(ApiKey.ALTER_CLIENT_QUOTAS, version, {
            "entries": [{"entity": [{"entity_type": kind, "entity_name": name} for kind, name in entity],
                         "ops": [{"key": key, "value": 0.0 if value is None else float(value),
                                  "remove": value is None} for key, value in ops.items()]}
                        for entity, ops in entries],
            "validate_only": validate_only})
        return [(e["error_code"], e["error_message"]) for e in answer["entries"]]
    finally:
        connection.close()


def describe_quotas(bootstrap, components=(), strict=False, version=1):
    """``components``: [(type, match type, match)] -> (error code,
    {((type, name), ...): {key: value}})."""
    connection = Connection(bootstrap)
    try:
        answer = connection.request(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, {
            "components": [{"entity_type": kind, "match_type": match_type, "match": match}
                           for kind, match_type, match in components],
            "strict": strict})
        return answer["error_code"], {
            tuple((e["entity_type"], e["entity_name"]) for e in entry["entity"]):
                {v["key"]: v["value"] for v in entry["values"]}
            for entry in answer["entries"] or ()}
    finally:
        connection.close()
