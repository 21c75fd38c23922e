"""The etcd key layout and its JSON: every value decodes to what was
encoded, and every key names what it was made from."""

import uuid

from twisted.trial.unittest import SynchronousTestCase

from kafscale.etcd import layout
from kafscale.etcd.client import KeyValue
from kafscale.etcd.layout import Keys, Owner
from kafscale.metadata.interfaces import BrokerInfo, CommittedOffset, PartitionState, SegmentRef, TopicInfo


def _kv(key, value, lease=0, mod_revision=0):
    return KeyValue(key=key, value=value, create_revision=0, mod_revision=mod_revision, version=1, lease=lease)


class KeysTests(SynchronousTestCase):
    keys = Keys(layout.cluster_prefix("prod"))

    def test_every_key_is_under_the_cluster_prefix(self):
        self.assertEqual(self.keys.prefix, b"/kafscale/prod/")
        self.assertEqual(Keys("/kafscale/prod").prefix, b"/kafscale/prod/")
        self.assertEqual(self.keys.segment("events", 3, 42), b"/kafscale/prod/segments/events/3/00000000000000000042")
        self.assertEqual(self.keys.relative(self.keys.topic("events")), "topics/events")

    def test_what_a_key_names(self):
        self.assertEqual(self.keys.topic_partition(self.keys.owner("events", 3)), ("events", 3))
        self.assertEqual(self.keys.topic_partition(self.keys.offset("a/b", "events", 3)), ("events", 3))
        self.assertEqual(self.keys.group_id(self.keys.group("a/b%")), "a/b%")
        self.assertEqual(self.keys.group_id(self.keys.offset("a/b%", "events", 3)), "a/b%")
        self.assertEqual(self.keys.node_id(self.keys.broker(1001)), 1001)
        self.assertEqual(self.keys.slot(self.keys.coordinator(63)), 63)

    def test_group_ids_are_escaped(self):
        self.assertEqual(self.keys.relative(self.keys.offsets("a/b")), "offsets/a%2Fb/")


class ValuesTests(SynchronousTestCase):
    def test_topic(self):
        info = TopicInfo("events", uuid.uuid4(), 3, {"retention.ms": "1000"}, 17)
        key = Keys("/p/").topic("events")
        self.assertEqual(layout.decode_topic(_kv(key, layout.encode_topic(info))), info)

    def test_partition(self):
        segment = SegmentRef(0, 9, 5, 100, 10, "events/0/0-e1.kfs")
        state = PartitionState("events", 0, 2, 0, 10, (segment,), ((1, 0), (2, 10)))
        encoded = layout.encode_partition(state, "token")
        self.assertEqual(layout.decode_partition("events", 0, encoded, (segment,)), (state, "token"))

    def test_segment(self):
        segment = SegmentRef(10, 19, 5, 100, 10, "events/0/10-e1.kfs")
        self.assertEqual(layout.decode_segment(layout.encode_segment(segment)), segment)

    def test_offset_and_group(self):
        committed = CommittedOffset(5, -1, None, 17)
        self.assertEqual(layout.decode_offset(layout.encode_offset(committed)), committed)
        self.assertEqual(layout.decode_group(layout.encode_group({"generation": 1})), {"generation": 1})
        with self.assertRaises(TypeError):
            layout.encode_group({"bytes": b"x"})

    def test_broker(self):
        info = BrokerInfo(1001, "127.0.0.1", 9092, None, 17)
        self.assertEqual(layout.decode_broker(layout.encode_broker(info)), info)

    def test_owners(self):
        topic_id = uuid.uuid4()
        partition = _kv(b"k", layout.encode_partition_owner(7, 3, topic_id), lease=5, mod_revision=9)
        self.assertEqual(layout.decode_owner(partition), Owner(7, 3, topic_id, 5, 9))
        slot = _kv(b"k", layout.encode_slot_owner(7), lease=5, mod_revision=9)
        self.assertEqual(layout.decode_owner(slot), Owner(7, 0, None, 5, 9))
