"""Committed offsets on the wire: OffsetCommit and OffsetFetch requests
whatever the version's layout, and a test case with one broker and a topic
"t" of three partitions."""

from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import start_broker
from tests.support.groups import FAST_REBALANCES
from tests.support.topics import create_topic
from tests.support.wire import Connection


def commit(connection, version, group_id, topic, partitions, generation=-1, member_id=""):
    """``partitions``: (index, offset, leader epoch, metadata) tuples."""
    return connection.request(ApiKey.OFFSET_COMMIT, version, {
        "group_id": group_id, "generation_id_or_member_epoch": generation, "member_id": member_id,
        "group_instance_id": None, "retention_time_ms": -1,
        "topics": [{
            "name": topic.name, "topic_id": topic.topic_id,
            "partitions": [
                {"partition_index": index, "committed_offset": offset, "committed_leader_epoch": epoch,
                 "committed_metadata": metadata}
                for index, offset, epoch, metadata in partitions
            ],
        }],
    })


def commit_errors(response):
    return [(p["partition_index"], p["error_code"]) for t in response["topics"] for p in t["partitions"]]


def fetch_offsets(connection, version, groups):
    """``groups``: group id -> (topic, partition indexes) list or None (all).
    -> group id -> (group error, {(topic name or id, partition): (offset, epoch, metadata, error)})."""
    def topics(wanted):
        if wanted is None:
            return None
        return [{"name": t.name, "topic_id": t.topic_id, "partition_indexes": indexes} for t, indexes in wanted]

    def partitions(entries):
        return {
            (t.get("name") or t.get("topic_id"), p["partition_index"]):
                (p["committed_offset"], p.get("committed_leader_epoch", -1), p["metadata"], p["error_code"])
            for t in entries for p in t["partitions"]
        }

    if version >= 8:
        response = connection.request(ApiKey.OFFSET_FETCH, version, {
            "groups": [{"group_id": g, "member_id": None, "member_epoch": -1, "topics": topics(w)}
                       for g, w in groups.items()],
            "require_stable": False,
        })
        return {g["group_id"]: (g["error_code"], partitions(g["topics"])) for g in response["groups"]}
    [(group_id, wanted)] = groups.items()
    response = connection.request(ApiKey.OFFSET_FETCH, version, {
        "group_id": group_id, "topics": topics(wanted), "require_stable": False,
    })
    return {group_id: (response.get("error_code", ErrorCode.NONE), partitions(response["topics"]))}


class OffsetsWireTestCase(unittest.TestCase):
    """One broker with fast rebalances and a topic "t" of three partitions,
    spoken to over the bare wire."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "t", partitions=3)
        self.topic = self.broker.topics["t"]

    def connection(self):
        connection = Connection(self.bootstrap)
        self.addCleanup(connection.close)
        return connection

    def key(self, version, partition):
        return (self.topic.topic_id if version >= 10 else "t", partition)
