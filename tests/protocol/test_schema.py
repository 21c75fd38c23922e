"""Tests for kafscale.protocol.schema, the compiler of Kafka's JSON schemas."""

import struct
import sys
import uuid

from twisted.trial.unittest import SynchronousTestCase

from kafscale.protocol.schema import (
    DecodeError,
    Message,
    Versions,
    strip_comments,
    compile_message,
    load_messages,
    read_uvarint,
    snake_case,
    uvarint,
)

# A made-up schema using every feature the compiler supports.
EXAMPLE = {
    "apiKey": 999,
    "type": "request",
    "name": "ExampleRequest",
    "validVersions": "0-2",
    "flexibleVersions": "2+",
    "fields": [
        {"name": "Count", "type": "int32", "versions": "0+", "default": "0x7fffffff"},
        {"name": "Epoch", "type": "int64", "versions": "0+", "default": -1},
        {"name": "Ratio", "type": "float64", "versions": "1+", "default": "0.5"},
        {"name": "Port", "type": "uint16", "versions": "0+"},
        {"name": "Name", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
        {"name": "ClientId", "type": "string", "versions": "0+", "flexibleVersions": "none", "default": "c"},
        {"name": "Ids", "type": "[]int32", "versions": "0+"},
        {"name": "Cursor", "type": "Cursor", "versions": "1+", "nullableVersions": "1+", "default": "null",
         "fields": [
             {"name": "Topic", "type": "string", "versions": "1+"},
             {"name": "PartitionIndex", "type": "int32", "versions": "1+"},
         ]},
        {"name": "Replicas", "type": "[]Replica", "versions": "0+"},
        {"name": "Leader", "type": "LeaderIdAndEpoch", "versions": "2+", "taggedVersions": "2+", "tag": 0,
         "fields": [
             {"name": "LeaderId", "type": "int32", "versions": "2+", "default": "-1"},
             {"name": "LeaderEpoch", "type": "int32", "versions": "2+", "default": "-1"},
         ]},
        {"name": "ClusterId", "type": "string", "versions": "2+", "nullableVersions": "2+", "default": "null",
         "taggedVersions": "2+", "tag": 1},
        {"name": "Ready", "type": "bool", "versions": "2+", "taggedVersions": "2+", "tag": 2, "default": "False"},
    ],
    "commonStructs": [
        {"name": "Replica", "versions": "0+", "fields": [
            {"name": "ReplicaId", "type": "int32", "versions": "0+"},
            {"name": "DirectoryId", "type": "uuid", "versions": "1+"},
        ]},
    ],
}

UNBOUNDED = sys.maxsize
DIRECTORY = uuid.UUID("0123456789abcdef0123456789abcdef")
ZERO = uuid.UUID(int=0)


class Codec:
    """The reader and writer of one EXAMPLE version, with bytes in and out."""

    def __init__(self, version):
        self.read, self.write, self.default = compile_message(Message(EXAMPLE), version)

    def encode(self, message):
        parts = []
        self.write(message, parts)
        return b"".join(parts)

    def decode(self, data):
        return self.read(memoryview(data), 0, [UNBOUNDED])


class ExampleTests(SynchronousTestCase):
    def test_defaults(self):
        self.assertEqual(Codec(0).default(), {
            "count": 0x7FFFFFFF, "epoch": -1, "port": 0, "name": None, "client_id": "c", "ids": [], "replicas": []})
        self.assertEqual(Codec(2).default(), {
            "count": 0x7FFFFFFF, "epoch": -1, "ratio": 0.5, "port": 0, "name": None, "client_id": "c", "ids": [],
            "cursor": None, "replicas": [], "leader": {"leader_id": -1, "leader_epoch": -1},
            "cluster_id": None, "ready": False})

    def test_missing_keys_take_defaults(self):
        codec = Codec(1)
        encoded = codec.encode({})
        self.assertEqual(codec.decode(encoded), (codec.default(), len(encoded)))

    def test_non_flexible_layout(self):
        message = {"count": 1, "epoch": 2, "port": 65535, "name": "ab", "ids": [7], "replicas": [{"replica_id": 3}]}
        expected = (
            struct.pack(">iqH", 1, 2, 65535) + b"\x00\x02ab" + b"\x00\x01c"
            + struct.pack(">ii", 1, 7) + struct.pack(">ii", 1, 3)
        )
        codec = Codec(0)
        self.assertEqual(codec.encode(message), expected)
        self.assertEqual(codec.decode(expected)[0], {**message, "client_id": "c"})

    def test_flexible_layout_omits_default_tagged_fields(self):
        message = {"count": 1, "epoch": 2, "ratio": 1.5, "port": 80, "name": "ab", "client_id": "xy", "ids": [7],
                   "replicas": [{"replica_id": 3, "directory_id": DIRECTORY}],
                   "leader": {"leader_id": -1, "leader_epoch": -1}, "ready": False}
        expected = (
            struct.pack(">iqdH", 1, 2, 1.5, 80)
            + b"\x03ab"              # compact string
            + b"\x00\x02xy"          # this field is never compact
            + b"\x02" + struct.pack(">i", 7)
            + b"\xff"                # null struct
            + b"\x02" + struct.pack(">i", 3) + DIRECTORY.bytes + b"\x00"
            + b"\x00"                # no tagged field differs from its default
        )
        codec = Codec(2)
        self.assertEqual(codec.encode(message), expected)
        self.assertEqual(codec.decode(expected)[0], {**message, "cursor": None, "cluster_id": None})

    def test_flexible_layout_writes_set_tagged_fields_in_tag_order(self):
        message = {"ready": True, "cluster_id": "k", "leader": {"leader_id": 4}, "cursor": {"topic": "t"}}
        encoded = Codec(2).encode(message)
        tagged = (
            b"\x03"
            + b"\x00\x09" + struct.pack(">ii", 4, -1) + b"\x00"
            + b"\x01\x02\x02k"
            + b"\x02\x01\x01"
        )
        cursor = b"\x01" + b"\x02t" + struct.pack(">i", 0) + b"\x00"
        self.assertTrue(encoded.endswith(cursor + b"\x01" + tagged), encoded)
        decoded, _ = Codec(2).decode(encoded)
        self.assertEqual(decoded["leader"], {"leader_id": 4, "leader_epoch": -1})
        self.assertEqual(decoded["cursor"], {"topic": "t", "partition_index": 0})
        self.assertEqual((decoded["cluster_id"], decoded["ready"]), ("k", True))

    def test_unknown_tags_are_skipped(self):
        codec = Codec(2)
        encoded = codec.encode({"ready": True})
        self.assertTrue(encoded.endswith(b"\x01\x02\x01\x01"))
        with_unknown = encoded[:-4] + b"\x02\x02\x01\x01" + b"\x63\x03xyz"
        self.assertEqual(codec.decode(with_unknown), codec.decode(encoded)[:1] + (len(with_unknown),))

    def test_tagged_field_longer_than_its_size_is_a_decode_error(self):
        encoded = Codec(2).encode({"cluster_id": "k"})
        self.assertTrue(encoded.endswith(b"\x01\x01\x02\x02k"))
        self.assertRaises(DecodeError, Codec(2).decode, encoded[:-3] + b"\x01\x02k")

    def test_null_in_non_nullable_field_is_a_decode_error(self):
        encoded = bytearray(Codec(0).encode({}))
        offset = 4 + 8 + 2 + 2  # after the fixed run and the null Name
        encoded[offset:offset + 2] = b"\xff\xff"
        self.assertRaises(DecodeError, Codec(0).decode, bytes(encoded))

    def test_long_compact_lengths_use_multi_byte_varints(self):
        codec = Codec(2)
        message = {"name": "n" * 300, "ids": list(range(200)), "replicas": [{"replica_id": i} for i in range(130)]}
        encoded = codec.encode(message)
        decoded, end = codec.decode(encoded)
        self.assertEqual(end, len(encoded))
        self.assertEqual(decoded["name"], message["name"])
        self.assertEqual(decoded["ids"], message["ids"])
        self.assertEqual([r["replica_id"] for r in decoded["replicas"]], list(range(130)))
        self.assertEqual({r["directory_id"] for r in decoded["replicas"]}, {ZERO})

    def test_encode_accepts_any_bytes_like_for_bytes(self):
        spec = {"type": "data", "name": "Blob", "validVersions": "0-1", "flexibleVersions": "1+", "fields": [
            {"name": "Data", "type": "bytes", "versions": "0+"},
            {"name": "Records", "type": "records", "versions": "0+", "nullableVersions": "0+"}]}
        for version in (0, 1):
            read, write, _ = compile_message(Message(spec), version)
            encoded = []
            for value in (b"abc", bytearray(b"abc"), memoryview(b"xabcx")[1:4]):
                parts = []
                write({"data": value, "records": value}, parts)
                encoded.append(b"".join(parts))
            self.assertEqual(len(set(encoded)), 1)
            decoded, _ = read(memoryview(encoded[0]), 0, [UNBOUNDED])
            self.assertEqual(decoded, {"data": b"abc", "records": b"abc"})
            self.assertIsInstance(decoded["data"], bytes)
            self.assertIsInstance(decoded["records"], memoryview)


class PrimitiveTests(SynchronousTestCase):
    def test_snake_case(self):
        for name, key in (("TopicId", "topic_id"), ("ThrottleTimeMs", "throttle_time_ms"),
                          ("AllowAutoTopicCreation", "allow_auto_topic_creation"), ("IsrNodes", "isr_nodes"),
                          ("ISRNodes", "isr_nodes"), ("Name", "name"), ("ZkMigrationReady", "zk_migration_ready")):
            self.assertEqual(snake_case(name), key)

    def test_versions(self):
        self.assertIn(7, Versions("3+"))
        self.assertNotIn(2, Versions("3+"))
        self.assertEqual([v for v in range(8) if v in Versions("1-3")], [1, 2, 3])
        self.assertEqual([v for v in range(8) if v in Versions("4")], [4])
        self.assertEqual([v for v in range(8) if v in Versions("none")], [])

    def test_comments_are_stripped_but_not_inside_strings(self):
        text = '{\n  // a comment\n  "about": "see http://kafka // not a comment", // trailing\n  "n": 1\n}'
        self.assertEqual(strip_comments(text).split(), ["{", '"about":', '"see', "http://kafka", "//", "not", "a",
                                                         'comment",', '"n":', "1", "}"])

    def test_uvarint(self):
        for value in (0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**32 - 1):
            encoded = uvarint(value)
            self.assertEqual(read_uvarint(encoded + b"\xaa", 0), (value, len(encoded)))
        self.assertEqual(uvarint(300), b"\xac\x02")
        self.assertRaises(DecodeError, read_uvarint, b"\x80\x80\x80\x80\x80\x01", 0)


class AllSchemasTests(SynchronousTestCase):
    def test_every_version_compiles_and_roundtrips_its_defaults(self):
        count = 0
        for message in load_messages():
            for version in message.versions():
                read, write, default = compile_message(message, version)
                parts = []
                write({}, parts)
                encoded = b"".join(parts)
                self.assertEqual(read(memoryview(encoded), 0, [UNBOUNDED]), (default(), len(encoded)), (message.name, version))
                count += 1
        self.assertGreater(count, 400)
