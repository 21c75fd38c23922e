"""Consumer groups against a running broker: settings that keep rebalances
short, JoinGroup and FindCoordinator on the wire, and a real consumer that
reads and commits in a group."""

import time

from confluent_kafka import Consumer

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey

# Short timers keep client tests fast: the smallest session the broker takes.
FAST_CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}

# No initial rebalance delay, for tests that do not measure it.
FAST_REBALANCES = ("--group-initial-rebalance-delay-ms", "0")


def join(connection, version, group_id, member_id="", instance=None, protocols=(("range", b"meta"),)):
    return connection.request(ApiKey.JOIN_GROUP, version, {
        "group_id": group_id, "session_timeout_ms": 6000, "rebalance_timeout_ms": 10000,
        "member_id": member_id, "group_instance_id": instance, "protocol_type": "consumer",
        "protocols": [{"name": name, "metadata": metadata} for name, metadata in protocols], "reason": None,
    })


def join_as_new_member(test, connection, version, group_id, **kwargs):
    joined = join(connection, version, group_id, **kwargs)
    if version >= 4 and kwargs.get("instance") is None:
        test.assertEqual(joined["error_code"], ErrorCode.MEMBER_ID_REQUIRED)
        test.assertEqual(joined["generation_id"], -1)
        joined = join(connection, version, group_id, member_id=joined["member_id"], **kwargs)
    test.assertEqual(joined["error_code"], ErrorCode.NONE)
    return joined


def find(connection, version, keys, key_type=0):
    """FindCoordinator -> [(key, error, node id, host, port)] whatever the version's layout."""
    if version >= 4:
        body = {"key_type": key_type, "coordinator_keys": keys}
        response = connection.request(ApiKey.FIND_COORDINATOR, version, body)
        return [(c["key"], c["error_code"], c["node_id"], c["host"], c["port"]) for c in response["coordinators"]]
    [key] = keys
    r = connection.request(ApiKey.FIND_COORDINATOR, version, {"key": key, "key_type": key_type})
    return [(key, r["error_code"], r["node_id"], r["host"], r["port"])]


def consume_in_group(bootstrap, group, topic, count, timeout=30):
    """Join ``group``, read ``count`` records (from the committed offsets,
    else the earliest), commit, leave. -> [(partition, offset)]"""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", **FAST_CONSUMER})
    try:
        consumer.subscribe([topic])
        seen = []
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                seen.append((message.partition(), message.offset()))
        consumer.commit(asynchronous=False)
        return sorted(seen)
    finally:
        consumer.close()
