"""The metadata store: what the broker and the admin CLI keep outside the
object store, and the interface its backends (etcd, embedded SQLite) provide.

Every write is atomic, and a partition's committed state changes only by a
compare-and-swap on its leader epoch (and, for commits, its next offset): a
deposed owner's late write fails with `Fenced` and is never acknowledged.

The model: topics (TopicInfo); per partition its committed state
(PartitionState: leader epoch, log start, next offset, epoch history) and
its manifest of segments (SegmentRef), which grows one segment per commit;
per consumer group its state and committed offsets (CommittedOffset); the
live brokers (BrokerInfo), whose registrations lapse with their process;
the ACLs (kafscale.metadata.acls.AclBinding) and client quotas.
Where each lives is the backend's business (kafscale.etcd.layout for etcd,
the schema in kafscale.metadata.embedded for SQLite).

Results carry the whole manifest, but a store need not re-read it on every
commit: it may keep each partition's segments under the partition's
revision and reload them only when another writer changed the partition.
The manifest is a `Manifest`, whose append costs O(1), so a commit costs the
same whatever the manifest's length.
"""

import itertools
import uuid
from dataclasses import dataclass, replace

from zope.interface import Interface

from kafscale.metadata.manifest import Manifest

CHANGE_AREAS = frozenset({"topics", "partitions", "groups", "brokers", "acls", "quotas", "broker_configs"})
"""What a change notification may name (see `IMetadataStore.subscribe`)."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str]
    """Only the configs set explicitly on this topic; defaults are the
    broker's business. Treat as read-only."""
    created_ms: int
    replication_factor: int = 1
    """What the topic was created with, kept to be reported back: the
    object store replicates every partition whatever the number."""


@dataclass(frozen=True, slots=True, order=True)
class SegmentRef:
    """One committed segment of a partition's log, as listed in its manifest."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int
    count: int
    """Number of records (not batches)."""
    key: str
    """Object key of the ``.kfs`` file; the ``.index`` key derives from it.
    It should be unique to its writer (carry the leader epoch, say): with
    the bare base offset, a deposed owner's late upload could overwrite the
    object its successor committed under the same name."""
    position: int = 0
    """Where this entry's bytes start in the object; ``size`` is their
    length. The bytes at ``[position, position + size)`` are a whole
    segment frame in either format."""
    format: int = 1
    """1: the object is this partition's segment alone (position 0, with an
    ``.index`` beside it); 2: a slice of a multi-partition object that other
    partitions' entries may name too (kafscale.storage.object_format)."""
    aborted: tuple[tuple[int, int, int], ...] = ()
    """The aborted-transaction index of this entry: (producer id, first
    offset, offset of the ABORT marker) of each transaction whose ABORT
    marker is in this entry. Whoever replaces entries (a merge, compaction)
    carries the union of the replaced entries' ``aborted`` into the new
    ones, so read_committed readers keep skipping aborted records."""
    open: tuple[tuple[int, int], ...] = ()
    """The transactions open at the end of this entry: (producer id, first
    offset), by producer id. A new owner takes them from the last entry;
    the last stable offset is the least first offset. A replacement carries
    the last replaced entry's ``open``."""


@dataclass(frozen=True, slots=True)
class SegmentCommit:
    """One partition's part of `IMetadataStore.commit_segments`: the
    arguments of `IMetadataStore.commit_segment`."""

    topic: str
    partition: int
    epoch: int
    expected_next_offset: int
    segment: SegmentRef


@dataclass(frozen=True, slots=True)
class PartitionState:
    """A partition's committed state.

    ``next_offset`` is the high watermark: everything below it (and at or
    above ``log_start_offset``) is in the committed segments. An epoch of 0
    means the partition was never claimed. ``epoch_history`` lists
    (epoch, start offset) for each epoch that owned the partition, oldest
    first, as OffsetsForLeaderEpoch needs it; an epoch that appended nothing
    before the next claim leaves no entry, and entries wholly below the log
    start are dropped.
    """

    topic: str
    partition: int
    leader_epoch: int
    log_start_offset: int
    next_offset: int
    segments: Manifest
    """Sorted by base offset; contiguous from the first to ``next_offset``.
    Any sequence given is taken as a Manifest."""
    epoch_history: tuple[tuple[int, int], ...]

    def __post_init__(self):
        if not isinstance(self.segments, Manifest):
            object.__setattr__(self, "segments", Manifest(self.segments))

    # The transitions every store makes, each behind its own compare-and-swap.

    def claimed(self):
        """The state a claim stores: the next leader epoch, starting at the
        next offset."""
        epoch = self.leader_epoch + 1
        # An epoch that appended nothing needs no entry: it starts where the
        # next one does.
        history = tuple(entry for entry in self.epoch_history if entry[1] < self.next_offset)
        return replace(self, leader_epoch=epoch, epoch_history=(*history, (epoch, self.next_offset)))

    def with_segment(self, segment):
        """The state a commit of ``segment`` (see `check_continues`) stores."""
        return replace(self, next_offset=segment.last_offset + 1, segments=self.segments.appended(segment))

    def with_log_start(self, new_log_start):
        """-> (the state with the log start raised to ``new_log_start``, the
        SegmentRefs that drops); this state and [] when ``new_log_start`` is
        not above the log start. Raises ValueError beyond the next offset."""
        if new_log_start > self.next_offset:
            raise ValueError(
                f"{self.topic}-{self.partition}: log start {new_log_start} beyond next offset {self.next_offset}"
            )
        if new_log_start <= self.log_start_offset:
            return self, []
        dropped = self.segments.below(new_log_start)
        removed = list(self.segments[:dropped])
        history = self.epoch_history
        # Keep an epoch while some offset at or above the new start may be its.
        kept = tuple(entry for entry, (_, end) in itertools.pairwise(history) if end > new_log_start)
        advanced = replace(self, log_start_offset=new_log_start, segments=self.segments.dropped(dropped),
                           epoch_history=kept + history[-1:])
        return advanced, removed

    def with_replaced(self, old, new):
        """The state a `IMetadataStore.replace_segments` of ``old`` by
        ``new`` (see `check_replaces`) stores. Raises ManifestChanged unless
        ``old`` is a run of this manifest's entries."""
        first = self.segments.position_of(old[0]) if old else -1
        if first < 0 or first + len(old) > len(self.segments) \
                or any(self.segments[first + i] != ref for i, ref in enumerate(old)):
            raise ManifestChanged(self.topic, self.partition)
        return replace(self, segments=self.segments.replaced(first, first + len(old), new))


def check_continues(topic, partition, expected_next_offset, segment):
    """Raise ValueError unless ``segment`` starts the log at
    ``expected_next_offset`` (as `IMetadataStore.commit_segment` requires)."""
    if segment.base_offset != expected_next_offset or segment.last_offset < segment.base_offset:
        raise ValueError(
            f"{topic}-{partition}: segment {segment.base_offset}-{segment.last_offset}"
            f" does not continue the log at {expected_next_offset}"
        )


def check_replaces(topic, partition, old, new):
    """Raise ValueError unless ``new`` (SegmentRefs) spans exactly the
    offsets of ``old``, contiguously, holding at most as many records (a
    merge keeps them all, compaction drops some), as
    `IMetadataStore.replace_segments` requires."""
    def contiguous(refs):
        return all(a.last_offset + 1 == b.base_offset for a, b in itertools.pairwise(refs))

    if not old or not new or not contiguous(old) or not contiguous(new) \
            or (old[0].base_offset, old[-1].last_offset) != (new[0].base_offset, new[-1].last_offset) \
            or sum(ref.count for ref in old) < sum(ref.count for ref in new):
        raise ValueError(f"{topic}-{partition}: the replacement does not hold exactly the replaced offsets")
    if {ref.key for ref in old} & {ref.key for ref in new}:
        raise ValueError(f"{topic}-{partition}: a replacement must be written under new keys")


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    """-1 when the client did not say."""
    metadata: str | None
    commit_ms: int


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    """The address of the broker's first listener."""
    rack: str | None
    started_ms: int
    listeners: tuple[tuple[str, str, int], ...] = ()
    """(name, host, port) of each listener the broker advertises."""

    def address(self, listener):
        """-> (host, port) of the listener named ``listener``: the first
        listener's when the broker advertises no listener of that name."""
        for name, host, port in self.listeners:
            if name == listener:
                return host, port
        return self.host, self.port


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What a SCRAM server keeps of a user's password for one mechanism
    (RFC 5802): never the password itself."""

    mechanism: str
    """SCRAM-SHA-256 or SCRAM-SHA-512."""
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


class MetadataError(Exception):
    """Base of every error a metadata store raises."""


class TopicExists(MetadataError):
    pass


class UnknownTopic(MetadataError):
    """No such topic, or no such partition in it."""


class InvalidPartitions(MetadataError):
    """A partition count below one, or an increase that does not increase."""


class Fenced(MetadataError):
    """A compare-and-swap on a partition failed: the caller's leader epoch (or
    expected next offset) is not the stored one, so the caller has been
    deposed or raced another writer. Nothing was written. ``leader_epoch``
    and ``next_offset`` are the stored values when the store knows them."""

    def __init__(self, topic, partition, leader_epoch=None, next_offset=None):
        super().__init__(
            f"{topic}-{partition}: fenced (stored leader epoch {leader_epoch}, next offset {next_offset})"
        )
        self.topic = topic
        self.partition = partition
        self.leader_epoch = leader_epoch
        self.next_offset = next_offset


class NodeIdInUse(MetadataError):
    """Another live broker is registered under this node id."""


class OwnedElsewhere(MetadataError):
    """Another broker holds the partition."""

    def __init__(self, topic, partition, node_id):
        super().__init__(f"{topic}-{partition} is owned by broker {node_id}")
        self.node_id = node_id


class ManifestChanged(MetadataError):
    """A replacement of manifest entries found them gone: retention, a
    DeleteRecords or another replacement dropped some first. Nothing was
    written."""

    def __init__(self, topic, partition):
        super().__init__(f"{topic}-{partition}: the entries to replace are no longer all in the manifest")
        self.topic = topic
        self.partition = partition


class TransactionConflict(MetadataError):
    """A transaction's state changed since the version the writer read (or
    exists where the writer expected none). Nothing was written."""


class MetadataUnavailable(MetadataError):
    """The store cannot be reached, is locked by another writer, or is
    stopped: retry later. A write that timed out may still have been applied,
    so a retried commit_segment that fails with Fenced should re-read the
    partition state and look for its own segment before giving up."""


class IAclStore(Interface):
    """The ACLs (kafscale.metadata.acls.AclBinding) of the cluster. Every
    method returns a Deferred, failing with MetadataErrors, as
    `IMetadataStore`'s do."""

    def acls():
        """-> list of every stored AclBinding."""

    def create_acls(bindings):
        """Store each AclBinding of ``bindings`` (one already stored stays
        as it is), atomically. -> None."""

    def delete_acls(filters):
        """Remove every binding that one of ``filters`` (AclFilters)
        matches, atomically. -> for each filter, the list of the removed
        bindings it matched."""


class IClientQuotaStore(Interface):
    """The client quotas of the cluster. Every method returns a Deferred,
    failing with MetadataErrors, as `IMetadataStore`'s do."""

    def client_quotas():
        """-> dict of quota entity to its quotas (a dict of Kafka's quota
        key, like "producer_byte_rate", to a float). An entity is a sorted
        tuple of (entity type, name) pairs, the types among "user" and
        "client-id", a name None for the type's default entity."""

    def alter_client_quotas(alterations):
        """Apply ``alterations``, a sequence of (entity, changes) where
        ``changes`` maps quota keys to a float to set or None to remove,
        atomically; an entity left without quotas is forgotten. -> None."""


class IMetadataStore(IAclStore, IClientQuotaStore):
    """Topics, partition state and segment manifests, consumer groups and
    live brokers.

    Every method but `subscribe` returns a Deferred (its result is given
    after "->"; "raises" means the Deferred fails). A provider is also a
    `twisted.application.service.IService`: it works between startService
    and stopService (stopService returns a Deferred), so a MultiService can
    own it. Failures are `MetadataError` subclasses; `MetadataUnavailable` is
    the retriable one. Arguments are copied when the call is made: the caller
    may change its dicts afterwards.
    """

    def create_topic(name, partitions, configs=None, replication_factor=1):
        """Create a topic with a new random topic id and ``partitions``
        partitions (and ``replication_factor``, kept as given), each at epoch 0, log start 0, next offset 0, with no
        segments, all in one atomic write. -> TopicInfo.
        Raises TopicExists, InvalidPartitions."""

    def delete_topic(name):
        """Remove a topic with its partition states and manifests, atomically,
        and every group's committed offsets for it, as Kafka does.
        -> the removed TopicInfo, so the caller can delete its objects (they
        live under the topic's prefix). Raises UnknownTopic."""

    def topics():
        """-> dict of name to TopicInfo for every topic."""

    def alter_topic_configs(name, set=None, delete=()):
        """Remove the configs named in ``delete``, then set those in ``set``
        (a dict of str to str). -> the new TopicInfo. Raises UnknownTopic."""

    def add_partitions(name, total):
        """Grow a topic to ``total`` partitions, creating the new ones as
        create_topic does. -> the new TopicInfo.
        Raises UnknownTopic, InvalidPartitions (``total`` not above the
        current count)."""

    def partition_state(topic, partition):
        """-> PartitionState. Raises UnknownTopic."""

    def claim_partition(topic, partition, expected_epoch):
        """Take ownership: if the stored epoch is ``expected_epoch``, store
        epoch + 1 and record (epoch + 1, next offset) in the epoch history.
        -> the new PartitionState. Raises Fenced, UnknownTopic."""

    def commit_segment(topic, partition, epoch, expected_next_offset, segment):
        """Append ``segment`` (a SegmentRef whose base offset is
        ``expected_next_offset``) to the manifest and set the next offset to
        its last offset + 1, if and only if the stored epoch is ``epoch`` and
        the stored next offset is ``expected_next_offset``. -> the new
        PartitionState. Raises Fenced, UnknownTopic; ValueError for a segment
        that does not start at ``expected_next_offset``."""

    def commit_segments(commits):
        """Make several `commit_segment` calls at once (``commits`` a
        sequence of SegmentCommit, at most one per partition), each its own
        compare-and-swap: one refused commit does not refuse the others. A
        store may apply them in several atomic groups (etcd bounds a
        transaction). -> a list in the order of ``commits``: for each the
        new PartitionState, or the Fenced or UnknownTopic that refused it.
        Raises MetadataUnavailable when it cannot tell what was applied
        (some commits may have been): the caller re-reads the partitions
        and looks for its segments. Raises ValueError, applying nothing,
        for a segment that does not continue its commit's expected next
        offset."""

    def advance_log_start(topic, partition, epoch, new_log_start):
        """Raise the log start offset to ``new_log_start`` (at most the next
        offset) and drop the segments that end below it: whole segments only,
        so the log start may fall inside the first remaining segment. Fenced
        by ``epoch``. A ``new_log_start`` at or below the current one changes
        nothing. -> (new PartitionState, list of the removed SegmentRefs, whose
        objects the caller deletes). Raises Fenced, UnknownTopic; ValueError
        beyond the next offset."""

    def replace_segments(topic, partition, epoch, old, new):
        """Swap the manifest entries ``old`` (a run of consecutive entries,
        as the manifest holds them) for ``new`` (SegmentRefs under new keys
        spanning exactly the same offsets, contiguously, with at most as
        many records: a merge of small segments into one, or their
        compaction), if the stored epoch is ``epoch``; the next
        offset and log start stay. -> the new PartitionState.
        Raises Fenced (another epoch), ManifestChanged (some of ``old`` is no
        longer in the manifest), UnknownTopic; ValueError when ``new`` does
        not hold exactly the offsets of ``old``."""

    def commit_offsets(group_id, offsets):
        """Store ``offsets``, a dict of (topic, partition) to CommittedOffset,
        for the group, atomically. -> None."""

    def fetch_offsets(group_id, partitions=None):
        """-> dict of (topic, partition) to CommittedOffset for the given
        (topic, partition) pairs, or for all the group has when
        ``partitions`` is None. Pairs with no committed offset are absent."""

    def delete_offsets(group_id, partitions):
        """Remove the group's committed offsets for ``partitions``, an
        iterable of (topic, partition); those it has none for are ignored.
        -> None."""

    def group_configs(group_id):
        """-> the configs set on the group (a dict of str to str; empty when
        none are), whether or not the group exists."""

    def alter_group_configs(group_id, set=None, delete=()):
        """Remove the group configs named in ``delete``, then set those in
        ``set``, in one write. -> the group's configs after."""

    def broker_configs():
        """-> the dynamic broker configs: {resource name: {config name:
        value}}, resource "" being the defaults of every broker and a node
        id's text that broker's own."""

    def alter_broker_configs(resource, set=None, delete=()):
        """Remove the dynamic broker configs of ``resource`` ("" or a node
        id's text) named in ``delete``, then set those in ``set``, in one
        write (reported as a "broker_configs" change). -> the resource's
        configs after."""

    def save_group(group_id, state):
        """Replace the group's state (a JSON-able dict: membership,
        generation, protocol, assignments; bytes must be encoded by the
        caller: a state that is not JSON-able raises TypeError at once).
        -> None."""

    def load_group(group_id):
        """-> the last saved state dict, or None."""

    def groups():
        """-> sorted list of every group id with saved state or offsets."""

    def delete_group(group_id):
        """Remove the group's state and offsets. -> True if there was any."""

    def load_transaction(transactional_id):
        """-> (state, version) of the transactional id's last saved state
        (a JSON-able dict), or None when it has none."""

    def save_transaction(transactional_id, state, expected_version):
        """Replace the transactional id's state with ``state`` (a JSON-able
        dict) if its version is ``expected_version`` (0: it has none yet).
        -> the new version. Raises TransactionConflict otherwise."""

    def transactions():
        """-> dict of transactional id to (state, version), every one."""

    def delete_transaction(transactional_id, expected_version):
        """Forget the transactional id if its state is at
        ``expected_version``. -> True if it was deleted, False if its
        version had moved on (or it was gone)."""

    def register_broker(info):
        """Announce a live broker (a BrokerInfo), replacing any registration
        with the same node id. The registration lasts while this store runs;
        if the process dies it lapses within a few seconds. -> None."""

    def brokers():
        """-> list of the live BrokerInfo, sorted by node id."""

    def subscribe(callback):
        """Call ``callback(changed)`` within about a second whenever another
        process (or another store object) changes the store; ``changed`` is a
        frozenset naming the areas that changed (a subset of CHANGE_AREAS).
        Changes are noticed from the moment the store's first call has been
        answered, so subscribe, then read, then act on notifications. A store
        may also report its own changes: treat a call as a hint to re-read.
        Exceptions from the callback are logged. -> a no-argument callable
        that unsubscribes."""


class IScramCredentialStore(Interface):
    """The users' SCRAM credentials, kept beside the rest of the metadata
    (both metadata stores provide it). Every method returns a Deferred."""

    def set_scram_credential(user, credential):
        """Store ``credential`` (a ScramCredential) as ``user``'s for its
        mechanism, replacing any. -> None."""

    def delete_scram_credential(user, mechanism):
        """Remove ``user``'s credential for ``mechanism``. -> whether there
        was one."""

    def scram_credentials(user=None):
        """-> dict of mechanism to ScramCredential for ``user``; with no
        user, dict of every user to that dict."""
