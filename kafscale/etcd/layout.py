"""Every key Kafscale keeps in etcd and the JSON in it: the one place that
says where things are and how they are written, for the metadata store, the
cluster view and ``kafscale-admin`` alike.

Every key lives under one cluster prefix, ``/kafscale/<cluster id>/``; every
value is compact JSON::

    topics/{topic}                       {"id", "partitions", "configs", "created_ms", "replication_factor"}
    partitions/{topic}/{partition}       {"epoch", "log_start", "next", "history", "claim"}
    segments/{topic}/{partition}/{base}  {"base", "last", "max_timestamp", "size", "count", "key", "pos", "fmt"}
    groups/{group}                       the group's state, as its coordinator saved it
    group_configs/{group}                {config name: value} set on the group
    offsets/{group}/{topic}/{partition}  {"offset", "leader_epoch", "metadata", "commit_ms"}
    brokers/{node id}                    {"node_id", "host", "port", "rack", "started_ms", "listeners"}, under the broker's lease
    owners/{topic}/{partition}           {"node_id", "epoch", "topic_id"}, under the owner's lease
    coordinators/{slot}                  {"node_id"}, under the owner's lease
    users/{user}/{mechanism}             {"salt", "stored_key", "server_key", "iterations"} (base64 keys)
    acls/{digest}                        {"resource_type", "resource_name", "pattern_type", "principal",
                                          "host", "operation", "permission"}
    quotas/{entity}                      {"producer_byte_rate": 1048576.0, ...}
    broker_configs/{node id | default}   {config name: value}, dynamic broker configs ("default": every broker's)

One key per item, so no value grows with the number of segments or groups.
Segment base offsets are zero-padded to 20 digits so that keys sort as
offsets do. Group ids and user names are percent-encoded (they may hold "/"); topic names
cannot hold one.

A partition key is absent until the partition's first claim (absent means
epoch 0, log start 0, next offset 0, no history), so creating or deleting a
topic touches a fixed number of keys however many partitions it has, within
etcd's limit of 128 operations per transaction. Its "claim" is a token unique
to the claim that wrote it, by which a retried claim recognises its own
success; "history" lists [epoch, start offset] pairs.

A segment key's "pos" and "fmt" (SegmentRef.position and format) are left
out at their defaults, 0 and 1: entries written before multi-partition
objects read as what they are.

An ACL's key is the SHA-256 of its value, so storing a binding twice
keeps one key. A quota key names its entity as percent-encoded JSON, a
list of [type, name] pairs (name null for a default entity).

An owner key's "epoch" is the leader epoch its owner claimed, "topic_id" the
hex id of the topic incarnation it claimed it in.
"""

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote, unquote

from kafscale.metadata.interfaces import (
    BrokerInfo,
    CommittedOffset,
    PartitionState,
    ScramCredential,
    SegmentRef,
    TopicInfo,
)
from kafscale.metadata.acls import AclBinding

AREA_PREFIXES = {
    "topics": ("topics/",),
    "partitions": ("partitions/",),
    "groups": ("groups/", "group_configs/", "offsets/"),
    "brokers": ("brokers/",),
    "acls": ("acls/",),
    "quotas": ("quotas/",),
    "broker_configs": ("broker_configs/",),
}
"""The key prefixes behind each change area of `IMetadataStore.subscribe`."""


def cluster_prefix(cluster_id):
    """The prefix of every key of the cluster named ``cluster_id``."""
    return f"/kafscale/{cluster_id}/"


class Keys:
    """The keys under one cluster prefix, and what a key names."""

    def __init__(self, prefix):
        self.prefix = prefix.encode() if isinstance(prefix, str) else prefix
        if not self.prefix.endswith(b"/"):
            self.prefix += b"/"

    def _key(self, *parts):
        return self.prefix + "/".join(str(part) for part in parts).encode()

    def area(self, name):
        """The prefix of one kind of key, like ``topics/``."""
        return self.prefix + name.encode()

    def topic(self, name):
        return self._key("topics", name)

    def partition(self, topic, partition):
        return self._key("partitions", topic, partition)

    def partitions(self, topic):
        return self._key("partitions", topic, "")

    def segment(self, topic, partition, base_offset):
        return self._key("segments", topic, partition, f"{base_offset:020d}")

    def segments(self, topic, partition=None):
        if partition is None:
            return self._key("segments", topic, "")
        return self._key("segments", topic, partition, "")

    def group(self, group_id):
        return self._key("groups", quote(group_id, safe=""))

    def broker_configs(self, resource):
        """The key of a broker config resource: a node id, or "" (every
        broker's defaults), kept as "default"."""
        return self._key("broker_configs", resource or _ALL_BROKERS)

    def broker_config_resource(self, key):
        """-> the broker config resource a broker config key names."""
        name = self.relative(key).split("/", 1)[1]
        return "" if name == _ALL_BROKERS else name

    def group_configs(self, group_id):
        return self._key("group_configs", quote(group_id, safe=""))

    def offsets(self, group_id):
        return self._key("offsets", quote(group_id, safe=""), "")

    def offset(self, group_id, topic, partition):
        return self._key("offsets", quote(group_id, safe=""), topic, partition)

    def broker(self, node_id):
        return self._key("brokers", node_id)

    def transaction(self, transactional_id):
        return self._key("transactions", quote(transactional_id, safe=""))

    def transactional_id(self, key):
        """-> the transactional id of a transaction key."""
        return unquote(self.relative(key).split("/")[1])

    def owner(self, topic, partition):
        return self._key("owners", topic, partition)

    def coordinator(self, slot):
        return self._key("coordinators", slot)

    def scram_credential(self, user, mechanism):
        return self._key("users", quote(user, safe=""), mechanism)

    def scram_credentials(self, user=None):
        if user is None:
            return self._key("users", "")
        return self._key("users", quote(user, safe=""), "")

    def user_mechanism(self, key):
        """-> (user, mechanism) of a SCRAM credential key."""
        _, user, mechanism = self.relative(key).split("/")
        return unquote(user), mechanism
    def acl(self, binding):
        return self._key("acls", hashlib.sha256(encode_acl(binding)).hexdigest())

    def quota(self, entity):
        return self._key("quotas", quote(_json([list(pair) for pair in entity]), safe=""))

    def quota_entity(self, key):
        """-> the quota entity a quota key names."""
        return tuple(tuple(pair) for pair in json.loads(unquote(self.relative(key).split("/", 1)[1])))

    def relative(self, key):
        """``key`` without the cluster prefix, as text."""
        return key[len(self.prefix):].decode()

    # What a key names

    def topic_partition(self, key):
        """-> (topic, partition) of an owner or offset key."""
        topic, partition = self.relative(key).rsplit("/", 2)[-2:]
        return topic, int(partition)

    def group_id(self, key):
        """-> the group id of a group or offset key."""
        return unquote(self.relative(key).split("/")[1])

    def node_id(self, key):
        """-> the node id of a broker key."""
        return int(key.rsplit(b"/", 1)[1])

    def slot(self, key):
        """-> the slot of a coordinator key."""
        return int(key.rsplit(b"/", 1)[1])


# Values

_ALL_BROKERS = "default"


def _json(value):
    return json.dumps(value, separators=(",", ":")).encode()


def encode_configs(configs):
    """A group's or a broker resource's configs: {config name: value}."""
    return _json(configs)


def decode_configs(value):
    return json.loads(value)


def encode_topic(info):
    return _json({"id": info.topic_id.hex, "partitions": info.partitions, "configs": info.configs,
                  "created_ms": info.created_ms, "replication_factor": info.replication_factor})


def decode_topic(kv):
    """-> the TopicInfo of a topic key's KeyValue."""
    value = json.loads(kv.value)
    name = kv.key.rsplit(b"/", 1)[1].decode()
    # Topics written before the replication factor was kept have none.
    return TopicInfo(name, uuid.UUID(value["id"]), value["partitions"], value["configs"], value["created_ms"],
                     value.get("replication_factor", 1))


def encode_partition(state, claim):
    """A partition key's value: ``state`` (its segments are in their own
    keys) and the ``claim`` token of the claim that took it."""
    return _json({"epoch": state.leader_epoch, "log_start": state.log_start_offset, "next": state.next_offset,
                  "history": state.epoch_history, "claim": claim})


def decode_partition(topic, partition, data, segments):
    """-> (PartitionState with ``segments``, claim token) of a partition
    key's value."""
    value = json.loads(data)
    state = PartitionState(topic, partition, value["epoch"], value["log_start"], value["next"], segments,
                           tuple(tuple(entry) for entry in value["history"]))
    return state, value.get("claim")


def encode_segment(segment):
    value = {"base": segment.base_offset, "last": segment.last_offset, "max_timestamp": segment.max_timestamp,
             "size": segment.size, "count": segment.count, "key": segment.key}
    # Absent in entries written before multi-partition objects: the defaults.
    if segment.position:
        value["pos"] = segment.position
    if segment.format != 1:
        value["fmt"] = segment.format
    # Absent when the entry has no transaction to tell of.
    if segment.aborted:
        value["aborted"] = segment.aborted
    if segment.open:
        value["open"] = segment.open
    return _json(value)


def decode_segment(data):
    value = json.loads(data)
    return SegmentRef(value["base"], value["last"], value["max_timestamp"], value["size"], value["count"],
                      value["key"], value.get("pos", 0), value.get("fmt", 1),
                      tuple(tuple(entry) for entry in value.get("aborted", ())),
                      tuple(tuple(entry) for entry in value.get("open", ())))


def encode_group(state):
    """A group key's value; raises TypeError for a state that is not JSON-able."""
    return _json(state)


def decode_group(data):
    return json.loads(data)


def encode_offset(committed):
    return _json({"offset": committed.offset, "leader_epoch": committed.leader_epoch,
                  "metadata": committed.metadata, "commit_ms": committed.commit_ms})


def decode_offset(data):
    value = json.loads(data)
    return CommittedOffset(value["offset"], value["leader_epoch"], value["metadata"], value["commit_ms"])


def encode_transaction(state):
    return _json(state)


def decode_transaction(data):
    return json.loads(data)


def encode_broker(info):
    return _json({"node_id": info.node_id, "host": info.host, "port": info.port, "rack": info.rack,
                  "started_ms": info.started_ms, "listeners": [list(listener) for listener in info.listeners]})


def decode_broker(data):
    value = json.loads(data)
    return BrokerInfo(value["node_id"], value["host"], value["port"], value["rack"], value["started_ms"],
                      tuple(tuple(listener) for listener in value.get("listeners", ())))


def encode_scram_credential(credential):
    def text(data):
        return base64.b64encode(data).decode()

    return _json({"salt": text(credential.salt), "stored_key": text(credential.stored_key),
                  "server_key": text(credential.server_key), "iterations": credential.iterations})


def decode_scram_credential(mechanism, data):
    value = json.loads(data)
    return ScramCredential(mechanism, base64.b64decode(value["salt"]), base64.b64decode(value["stored_key"]),
                           base64.b64decode(value["server_key"]), value["iterations"])


@dataclass(frozen=True, slots=True)
class Owner:
    """What an owner key (of a partition or a coordinator slot) says, and
    which write of it this is."""

    node_id: int
    epoch: int
    """The partition's leader epoch under this owner (0 for a slot)."""
    topic_id: uuid.UUID | None
    """The topic incarnation the owner claimed the partition in (None for a slot)."""
    lease: int
    revision: int
    """The key's mod revision: later writes have larger ones."""


def encode_partition_owner(node_id, epoch, topic_id):
    return _json({"node_id": node_id, "epoch": epoch, "topic_id": topic_id.hex})


def encode_slot_owner(node_id):
    return _json({"node_id": node_id})


def decode_owner(kv):
    """-> the Owner of a partition's or slot's owner key (its KeyValue)."""
    value = json.loads(kv.value)
    topic_id = value.get("topic_id")
    return Owner(value["node_id"], value.get("epoch", 0), topic_id and uuid.UUID(topic_id), kv.lease,
                 kv.mod_revision)


def encode_acl(binding):
    return json.dumps(binding.to_json(), separators=(",", ":"), sort_keys=True).encode()


def decode_acl(data):
    return AclBinding.from_json(json.loads(data))


def encode_quotas(values):
    return _json(values)


def decode_quotas(data):
    return json.loads(data)
