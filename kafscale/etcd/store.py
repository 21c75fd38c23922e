"""The metadata store on etcd: what a cluster of brokers shares. Where each
thing is kept is in kafscale.etcd.layout.

Every write that depends on what it read is a transaction comparing the
keys it read by revision, retried on a conflict. A partition's committed
state changes only through such a compare on the partition key, which is
what fences a deposed owner. etcd may apply a request twice when a dropped
connection makes the client retry it; claims and commits recognise their
own earlier success (a claim token, a writer-unique segment key) instead of
reporting themselves fenced.

Results carry the whole manifest, but the store does not re-read it on every
commit: it keeps each partition's segments under the partition key's
mod_revision and reloads them only when another writer changed the key.

The store keeps one lease (its session), granted on first need: broker
registrations and the owner keys of partitions and coordinator slots hang on
it, so they vanish when the process dies. A session whose lease was lost is
replaced, and the registrations are made again.
"""

import dataclasses
import itertools
import os
import uuid
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, FirstError, fail, gatherResults
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from zope.interface import implementer

from kafscale.etcd import layout
from kafscale.etcd.client import (
    Compare,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    LeaseNotFound,
    Op,
    prefix_range_end,
)
from kafscale.etcd.interfaces import IOwnershipStore
from kafscale.etcd.layout import AREA_PREFIXES, Keys, cluster_prefix
from kafscale.etcd.lease import LeaseKeeper
from kafscale.log import logger
from kafscale.metadata.requests import reported
from kafscale.metadata.topic_configs import with_changes
from kafscale.metadata.interfaces import (
    CHANGE_AREAS,
    IScramCredentialStore,
    Fenced,
    InvalidPartitions,
    ManifestChanged,
    MetadataError,
    MetadataUnavailable,
    NodeIdInUse,
    OwnedElsewhere,
    PartitionState,
    SegmentCommit,
    TopicExists,
    TopicInfo,
    TransactionConflict,
    UnknownTopic,
    check_continues,
    check_replaces,
)

log = logger("kafscale.etcd.store")

# Conflicting writers are rare (each partition has one owner), so a write
# that keeps losing its compare-and-swap is a sign of trouble, not of load.
CAS_ATTEMPTS = 16

# Segment manifests are read in pages of this many keys.
PAGE = 1000

# etcd's default --max-txn-ops.
MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class Acquired:
    """A partition taken with `EtcdMetadataStore.acquire_partition`."""

    state: PartitionState
    revision: int
    """The revision of the write: later writes of the owner key have larger ones."""
    lease: int
    """The lease the owner key hangs on."""


@dataclass(frozen=True, slots=True)
class OwnerKeyWrite:
    """A coordinator slot taken with `EtcdMetadataStore.take_slot`."""

    revision: int
    """The revision of the write: later writes of the owner key have larger ones."""
    lease: int
    """The lease the owner key hangs on."""


@dataclass(frozen=True, slots=True)
class _Partition:
    """A partition's state as read at some revision, with what identifies
    the stored key: its create revision (one per topic incarnation) and its
    mod revision (one per write). Absent keys have both at 0."""

    create_revision: int
    mod_revision: int
    state: PartitionState
    claim: str | None


class _QuietFactory(_HTTP11ClientFactory):
    # One line per connection opened or closed is noise in a broker's log.
    noisy = False


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


@implementer(IOwnershipStore, IScramCredentialStore)
class EtcdMetadataStore(Service):
    """IMetadataStore, and IOwnershipStore, on etcd under ``prefix``
    (see `layout.cluster_prefix`).

    ``endpoints`` is a list of URLs or one comma-separated string.
    ``lease_ttl`` is the session lease's TTL in seconds: how long a dead
    process's registrations and owner keys outlive it. ``watched`` names the
    change areas reported to subscribers: each costs a watch, and
    "partitions" reports every commit in the cluster. ``tls`` and
    ``credentials`` go to the EtcdClient (TLS to https:// endpoints, etcd's
    own users). ``requests`` (an IMetadataRequests, if any) hears of every
    call.
    """

    def __init__(self, endpoints, prefix=cluster_prefix("kafscale"), *, lease_ttl=10, timeout=5.0,
                 watched=CHANGE_AREAS, reactor=None, tls=None, credentials=None, requests=None):
        if reactor is None:
            from twisted.internet import reactor
        self.keys = Keys(prefix)
        self.requests = requests
        self.lease_ttl = lease_ttl
        self._endpoints = endpoints
        self._timeout = timeout
        self._tls = tls
        self._credentials = credentials
        self._watched = frozenset(watched)
        self._reactor = reactor
        self.client = None
        self._pool = None
        self._subscribers = []
        self._watches = {}  # key prefix -> Watch
        self._watch_lock = DeferredLock()
        self._session = None
        self._session_lock = DeferredLock()
        self._registered = {}  # node id -> BrokerInfo this store registered
        self._partitions = {}  # (topic, partition) -> _Partition last read or written here

    # Lifetime

    def startService(self):
        super().startService()
        self._pool = _QuietPool(self._reactor)
        # Enough idle connections for concurrent commits, beside the watches.
        self._pool.maxPersistentPerHost = 8
        self.client = EtcdClient(self._endpoints, reactor=self._reactor, pool=self._pool, timeout=self._timeout,
                                 tls=self._tls, credentials=self._credentials)

    def stopService(self):
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        session, self._session = self._session, None
        self._registered.clear()
        if session is not None and not session.lost:
            try:
                await session.stop()
            except EtcdError as error:
                log.warn("could not revoke lease {lease:x}: {error}", lease=session.lease_id, error=error)
        self._watches.clear()
        await self.client.close()
        await self._pool.closeCachedConnections()

    def subscribe(self, callback):
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _notify(self, areas):
        for callback in list(self._subscribers):
            try:
                callback(areas)
            except Exception:
                log.failure("Metadata change subscriber {callback!r} failed", callback=callback)

    # Running calls

    def _run(self, function, *args):
        """Run ``function(*args)`` once the watches are set up, with etcd's
        errors as MetadataErrors. -> a Deferred."""
        if not self.running:
            return fail(MetadataUnavailable("etcd metadata store is stopped"))
        return reported(self.requests, function.__name__.lstrip("_"),
                        Deferred.fromCoroutine(self._translating(function, *args)))

    async def _translating(self, function, *args):
        try:
            await self._watching()
            return await function(*args)
        except EtcdUnavailable as error:
            raise MetadataUnavailable(f"etcd: {error}") from error
        except EtcdError as error:
            raise MetadataError(f"etcd: {error}") from error

    async def _watching(self):
        """Start the change watches, once. Every call waits for this, so
        changes are noticed from the moment the first call is answered."""
        if len(self._watches) == sum(len(AREA_PREFIXES[area]) for area in self._watched):
            return
        async with self._watch_lock:
            for area in self._watched:
                for name in AREA_PREFIXES[area]:
                    if name not in self._watches:
                        await self._watch(name, area)

    async def _watch(self, name, area):
        prefix = self.keys.area(name)
        start = (await self.client.range(prefix, prefix=True, count_only=True)).header_revision + 1
        self._watches[name] = self.client.watch(
            prefix, prefix=True, start_revision=start,
            callback=lambda events, revision: self._notify(frozenset({area})),
            on_compacted=lambda revision: self._rewatch(name, area),
        )

    def _rewatch(self, name, area):
        # The history this watch needed is gone: watch again from now, and
        # report the area as changed, since something may have.
        self._watches.pop(name, None)
        if self.running:
            Deferred.fromCoroutine(self._watch_again(area)).addErrback(
                lambda failure: log.failure("Cannot watch {name} again", failure, name=name))

    async def _watch_again(self, area):
        await self._watching()
        self._notify(frozenset({area}))

    # Topics

    def create_topic(self, name, partitions, configs=None, replication_factor=1):
        return self._run(self._create_topic, name, partitions, dict(configs or {}), replication_factor)

    def delete_topic(self, name):
        return self._run(self._delete_topic, name)

    def topics(self):
        return self._run(self._topics)

    def alter_topic_configs(self, name, set=None, delete=()):
        return self._run(self._alter_topic, name, dict(set or {}), tuple(delete), None)

    def add_partitions(self, name, total):
        return self._run(self._alter_topic, name, {}, (), total)

    async def _create_topic(self, name, partitions, configs, replication_factor):
        if partitions < 1:
            raise InvalidPartitions(f"{name}: a topic needs at least one partition, not {partitions}")
        info = TopicInfo(name, uuid.uuid4(), partitions, configs, int(self._reactor.seconds() * 1000),
                         replication_factor)
        key = self.keys.topic(name)
        created = await self.client.txn(
            [Compare.create_revision(key, "=", 0)], success=[Op.put(key, layout.encode_topic(info))]
        )
        if not created.succeeded:
            # The client retries a request whose answer it lost: the topic
            # may be the one this very call created.
            kv = await self.client.get(key)
            if kv is None or layout.decode_topic(kv).topic_id != info.topic_id:
                raise TopicExists(name)
        return info

    async def _delete_topic(self, name):
        key = self.keys.topic(name)
        # The topic is read first, so that a delete the client retried after
        # losing its answer still reports the topic it removed, whose
        # objects the caller must delete, rather than UnknownTopic.
        kv = await self.client.get(key)
        if kv is None:
            raise UnknownTopic(name)
        info = layout.decode_topic(kv)
        deleted = await self.client.txn(
            [Compare.create_revision(key, "=", kv.create_revision)],
            success=[
                Op.delete(key),
                Op.delete(self.keys.partitions(name), prefix=True),
                Op.delete(self.keys.segments(name), prefix=True),
            ],
        )
        if not deleted.succeeded and await self.client.get(key) is not None:
            # Deleted and created again meanwhile: the new topic is not ours to delete.
            raise UnknownTopic(name)
        for cached in [key for key in self._partitions if key[0] == name]:
            del self._partitions[cached]
        await self._delete_offsets_of(name)
        return info

    async def _delete_offsets_of(self, topic):
        # Offset keys lead with the group, so a topic's offsets are found by
        # reading every offset key (topic deletion is rare). They go after
        # the topic's own keys, not atomically with them: there may be more
        # than a transaction holds.
        reply = await self.client.range(self.keys.area("offsets/"), prefix=True, keys_only=True)
        deletes = [Op.delete(kv.key) for kv in reply.kvs if self.keys.topic_partition(kv.key)[0] == topic]
        for start in range(0, len(deletes), MAX_TXN_OPS):
            await self.client.txn([], success=deletes[start:start + MAX_TXN_OPS])

    async def _topics(self):
        reply = await self.client.range(self.keys.area("topics/"), prefix=True)
        return {info.name: info for info in map(layout.decode_topic, reply.kvs)}

    async def _alter_topic(self, name, updates, deletions, total):
        key = self.keys.topic(name)
        for _ in range(CAS_ATTEMPTS):
            kv = await self.client.get(key)
            if kv is None:
                raise UnknownTopic(name)
            info = layout.decode_topic(kv)
            partitions = info.partitions
            if total is not None:
                if total <= partitions:
                    raise InvalidPartitions(f"{name} has {partitions} partitions; cannot grow to {total}")
                partitions = total
            configs = with_changes(info.configs, updates, deletions)
            new = dataclasses.replace(info, partitions=partitions, configs=configs)
            written = await self.client.txn(
                [Compare.mod_revision(key, "=", kv.mod_revision)], success=[Op.put(key, layout.encode_topic(new))]
            )
            if written.succeeded:
                return new
        raise MetadataUnavailable(f"topic {name} kept changing under this write")

    # Partitions

    def partition_state(self, topic, partition):
        return self._run(self._partition_state, topic, partition)

    def claim_partition(self, topic, partition, expected_epoch):
        return self._run(self._claim, topic, partition, expected_epoch, None)

    def acquire_partition(self, topic, partition, node_id):
        return self._run(self._acquire, topic, partition, node_id)

    def release_partition(self, topic, partition):
        return self._run(self._release, self.keys.owner(topic, partition))

    def commit_segment(self, topic, partition, epoch, expected_next_offset, segment):
        return self._run(self._commit_segment, topic, partition, epoch, expected_next_offset, segment)

    def commit_segments(self, commits):
        return self._run(self._commit_segments, tuple(commits))

    def advance_log_start(self, topic, partition, epoch, new_log_start):
        return self._run(self._advance_log_start, topic, partition, epoch, new_log_start)

    def replace_segments(self, topic, partition, epoch, old, new):
        return self._run(self._replace_segments, topic, partition, epoch, tuple(old), tuple(new))

    async def _partition_state(self, topic, partition):
        return (await self._read_partition(topic, partition)).state

    async def _read_partition(self, topic, partition, *also):
        """Read the topic and partition keys, and the keys ``also``, in one
        transaction; -> _Partition (kept as the latest known) when ``also``
        is empty, else (_Partition, the KeyValue or None of each of ``also``)."""
        reply = await self.client.txn([], success=[
            Op.range(key) for key in (self.keys.topic(topic), self.keys.partition(topic, partition), *also)])
        topics, partitions, *others = reply.responses
        if not topics.kvs or not 0 <= partition < layout.decode_topic(topics.kvs[0]).partitions:
            raise UnknownTopic(f"{topic}-{partition}")
        if not partitions.kvs:
            read = _Partition(0, 0, PartitionState(topic, partition, 0, 0, 0, (), ()), None)
        else:
            kv = partitions.kvs[0]
            segments = await self._manifest(topic, partition, kv.mod_revision, reply.header_revision)
            state, claim = layout.decode_partition(topic, partition, kv.value, segments)
            read = _Partition(kv.create_revision, kv.mod_revision, state, claim)
        self._partitions[topic, partition] = read
        if not also:
            return read
        return read, topics.kvs[0], [other.kvs[0] if other.kvs else None for other in others]

    async def _manifest(self, topic, partition, mod_revision, revision):
        """The segments as of ``revision``; the copy kept from the last read
        or write when the partition key has not changed since."""
        known = self._partitions.get((topic, partition))
        if known is not None and known.mod_revision == mod_revision:
            return known.state.segments
        segments = []
        prefix = self.keys.segments(topic, partition)
        start, end = prefix, prefix_range_end(prefix)
        while True:
            page = await self.client.range(start, end, limit=PAGE, revision=revision)
            segments.extend(layout.decode_segment(kv.value) for kv in page.kvs)
            if not page.more:
                return tuple(segments)
            start = page.kvs[-1].key + b"\0"

    async def _acquire(self, topic, partition, node_id):
        session = await self._current_session()
        state = await self._claim(topic, partition, None, (node_id, session))
        return Acquired(state, self._partitions[topic, partition].mod_revision, session.lease_id)

    async def _release(self, key):
        """Delete an owner key or registration if the session lease holds it."""
        session = self._session
        if session is not None and not session.lost:
            await self.client.txn([Compare.lease(key, "=", session.lease_id)], success=[Op.delete(key)])

    async def _claim(self, topic, partition, expected_epoch, owner):
        """Claim, if the epoch is ``expected_epoch`` (None: any); with
        ``owner`` (node id, session) also write the owner key."""
        token = os.urandom(8).hex()
        topic_key = self.keys.topic(topic)
        partition_key = self.keys.partition(topic, partition)
        owner_key = self.keys.owner(topic, partition)
        for _ in range(CAS_ATTEMPTS):
            read, topic_kv, (holder,) = await self._read_partition(topic, partition, owner_key)
            state = read.state
            if expected_epoch is not None and state.leader_epoch != expected_epoch:
                raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
            claimed = state.claimed()
            compares = [
                Compare.create_revision(topic_key, "=", topic_kv.create_revision),
                Compare.mod_revision(partition_key, "=", read.mod_revision),
            ]
            ops = [Op.put(partition_key, layout.encode_partition(claimed, token))]
            if owner is not None:
                node_id, session = owner
                if holder is not None and holder.lease != session.lease_id:
                    raise OwnedElsewhere(topic, partition, layout.decode_owner(holder).node_id)
                compares.append(Compare.mod_revision(owner_key, "=", 0 if holder is None else holder.mod_revision))
                value = layout.encode_partition_owner(node_id, claimed.leader_epoch,
                                                      layout.decode_topic(topic_kv).topic_id)
                ops.append(Op.put(owner_key, value, lease=session.lease_id))
            written = await self.client.txn(compares, success=ops)
            if written.succeeded:
                self._partitions[topic, partition] = _Partition(
                    read.create_revision or written.header_revision, written.header_revision, claimed, token)
                return claimed
            again = await self._read_partition(topic, partition)
            if again.claim == token:
                # An earlier attempt of this very request was applied.
                return again.state
        raise MetadataUnavailable(f"{topic}-{partition} kept changing under a claim")

    async def _commit_segment(self, topic, partition, epoch, expected_next_offset, segment):
        (result,) = await self._commit_segments(
            [SegmentCommit(topic, partition, epoch, expected_next_offset, segment)])
        if isinstance(result, MetadataError):
            raise result
        return result

    async def _commit_segments(self, commits):
        for commit in commits:
            check_continues(commit.topic, commit.partition, commit.expected_next_offset, commit.segment)
        results = [None] * len(commits)
        # Two operations per commit: the partition key and the segment key.
        per_transaction = MAX_TXN_OPS // 2
        groups = [range(start, min(start + per_transaction, len(commits)))
                  for start in range(0, len(commits), per_transaction)]
        try:
            await gatherResults([Deferred.fromCoroutine(self._commit_group(commits, group, results))
                                 for group in groups], consumeErrors=True)
        except FirstError as error:
            error.subFailure.raiseException()
        return results

    async def _commit_group(self, commits, indices, results):
        """Commit ``commits[i]`` for each i in ``indices`` in one
        transaction, each compared on its partition key's revision. A
        partition that changed under it is re-read: a commit it refuses
        (or one of ours already applied) is settled alone, the rest are
        tried again. Sets ``results[i]``."""
        known = {}
        for i in indices:
            commit = commits[i]
            try:
                known[i] = (self._partitions.get((commit.topic, commit.partition))
                            or await self._read_partition(commit.topic, commit.partition))
            except UnknownTopic as error:
                results[i] = error
        pending = list(known)
        for _ in range(CAS_ATTEMPTS):
            compares, ops, failure_reads, attempted = [], [], [], []
            for i in pending:
                commit, read = commits[i], known[i]
                state = read.state
                if state.leader_epoch != commit.epoch or state.next_offset != commit.expected_next_offset:
                    results[i] = Fenced(commit.topic, commit.partition, state.leader_epoch, state.next_offset)
                    continue
                committed = state.with_segment(commit.segment)
                partition_key = self.keys.partition(commit.topic, commit.partition)
                compares.append(Compare.mod_revision(partition_key, "=", read.mod_revision))
                ops.append(Op.put(partition_key, layout.encode_partition(committed, read.claim)))
                ops.append(Op.put(self.keys.segment(commit.topic, commit.partition, commit.segment.base_offset),
                                  layout.encode_segment(commit.segment)))
                failure_reads.append(Op.range(partition_key, keys_only=True))
                attempted.append((i, committed))
            if not attempted:
                return
            written = await self.client.txn(compares, success=ops, failure=failure_reads)
            if written.succeeded:
                for i, committed in attempted:
                    read = known[i]
                    self._partitions[commits[i].topic, commits[i].partition] = _Partition(
                        read.create_revision, written.header_revision, committed, read.claim)
                    results[i] = committed
                return
            pending = []
            for (i, _), reply in zip(attempted, written.responses):
                revision = reply.kvs[0].mod_revision if reply.kvs else 0
                if revision == known[i].mod_revision:
                    pending.append(i)
                    continue
                commit = commits[i]
                try:
                    fresh = await self._read_partition(commit.topic, commit.partition)
                except UnknownTopic as error:
                    results[i] = error
                    continue
                if fresh.create_revision != known[i].create_revision:
                    # The topic was deleted (and maybe created again) meanwhile.
                    results[i] = Fenced(commit.topic, commit.partition, fresh.state.leader_epoch,
                                        fresh.state.next_offset)
                elif fresh.state.leader_epoch == commit.epoch and commit.segment in fresh.state.segments:
                    # An earlier attempt of this very commit was applied; the
                    # segment's key is unique to its writer, so it is ours.
                    results[i] = fresh.state
                else:
                    known[i] = fresh
                    pending.append(i)
        raise MetadataUnavailable(f"{len(pending)} partitions kept changing under a commit")

    async def _advance_log_start(self, topic, partition, epoch, new_log_start):
        for _ in range(CAS_ATTEMPTS):
            read = await self._read_partition(topic, partition)
            state = read.state
            if state.leader_epoch != epoch:
                raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
            advanced, removed = state.with_log_start(new_log_start)
            if advanced is state:
                return state, []
            partition_key = self.keys.partition(topic, partition)
            ops = [Op.put(partition_key, layout.encode_partition(advanced, read.claim))]
            if removed:
                first = self.keys.segment(topic, partition, removed[0].base_offset)
                last = self.keys.segment(topic, partition, removed[-1].base_offset)
                ops.append(Op.delete(first, range_end=last + b"\0"))
            written = await self.client.txn([Compare.mod_revision(partition_key, "=", read.mod_revision)],
                                            success=ops)
            if written.succeeded:
                self._partitions[topic, partition] = _Partition(
                    read.create_revision, written.header_revision, advanced, read.claim)
                return advanced, removed
        raise MetadataUnavailable(f"{topic}-{partition} kept changing under a log start change")

    async def _replace_segments(self, topic, partition, epoch, old, new):
        check_replaces(topic, partition, old, new)
        known = self._partitions.get((topic, partition))
        fresh = known is None
        if fresh:
            known = await self._read_partition(topic, partition)
        partition_key = self.keys.partition(topic, partition)
        # The new keys are put; the old keys between them (and after the
        # last) are range-deleted, never overlapping a put, which etcd
        # refuses within one transaction.
        ops = []
        for ref, following in itertools.zip_longest(new, new[1:]):
            key = self.keys.segment(topic, partition, ref.base_offset)
            ops.append(Op.put(key, layout.encode_segment(ref)))
            end = old[-1].base_offset if following is None else following.base_offset - 1
            if end > ref.base_offset:
                ops.append(Op.delete(key + b"\0", range_end=self.keys.segment(topic, partition, end) + b"\0"))
        for _ in range(CAS_ATTEMPTS):
            state = known.state
            if state.leader_epoch != epoch:
                raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
            try:
                replaced = state.with_replaced(old, new)
            except ManifestChanged:
                if fresh:
                    raise
                # What this store last knew may be stale: look again.
                known, fresh = await self._read_partition(topic, partition), True
                continue
            written = await self.client.txn(
                [Compare.mod_revision(partition_key, "=", known.mod_revision)],
                success=[Op.put(partition_key, layout.encode_partition(replaced, known.claim)), *ops],
            )
            if written.succeeded:
                self._partitions[topic, partition] = _Partition(
                    known.create_revision, written.header_revision, replaced, known.claim)
                return replaced
            latest = await self._read_partition(topic, partition)
            if latest.create_revision != known.create_revision:
                raise Fenced(topic, partition, latest.state.leader_epoch, latest.state.next_offset)
            segments = latest.state.segments
            if latest.state.leader_epoch == epoch and all(segments.position_of(ref) >= 0 for ref in new):
                # An earlier attempt of this very replacement was applied;
                # the new keys are unique to this writer.
                return latest.state
            known, fresh = latest, True
        raise MetadataUnavailable(f"{topic}-{partition} kept changing under a replacement")

    # Coordinator slots

    def take_slot(self, slot, node_id, revision):
        return self._run(self._take_slot, slot, node_id, revision)

    def release_slot(self, slot):
        return self._run(self._release, self.keys.coordinator(slot))

    async def _take_slot(self, slot, node_id, revision):
        session = self._session
        if session is None or session.lost:
            return None
        key = self.keys.coordinator(slot)
        taken = await self.client.txn(
            [Compare.mod_revision(key, "=", revision)],
            success=[Op.put(key, layout.encode_slot_owner(node_id), lease=session.lease_id)],
        )
        return OwnerKeyWrite(taken.header_revision, session.lease_id) if taken.succeeded else None

    # Consumer groups

    def commit_offsets(self, group_id, offsets):
        return self._run(self._commit_offsets, group_id, dict(offsets))

    def fetch_offsets(self, group_id, partitions=None):
        wanted = None if partitions is None else frozenset(partitions)
        return self._run(self._fetch_offsets, group_id, wanted)

    def delete_offsets(self, group_id, partitions):
        return self._run(self._delete_offsets, group_id, tuple(partitions))

    def broker_configs(self):
        return self._run(self._broker_configs)

    def alter_broker_configs(self, resource, set=None, delete=()):
        return self._run(self._alter_broker_configs, resource, dict(set or {}), tuple(delete))

    def group_configs(self, group_id):
        return self._run(self._group_configs, group_id)

    def alter_group_configs(self, group_id, set=None, delete=()):
        return self._run(self._alter_group_configs, group_id, dict(set or {}), tuple(delete))

    def save_group(self, group_id, state):
        try:
            value = layout.encode_group(state)
        except TypeError as error:
            return fail(error)
        return self._run(self._save_group, group_id, value)

    def load_group(self, group_id):
        return self._run(self._load_group, group_id)

    def groups(self):
        return self._run(self._groups)

    def delete_group(self, group_id):
        return self._run(self._delete_group, group_id)

    async def _commit_offsets(self, group_id, offsets):
        puts = [
            Op.put(self.keys.offset(group_id, topic, partition), layout.encode_offset(committed))
            for (topic, partition), committed in offsets.items()
        ]
        # etcd bounds a transaction: a commit of more partitions than that
        # lands in atomic chunks, each offset still valid on its own.
        for start in range(0, len(puts), MAX_TXN_OPS):
            await self.client.txn([], success=puts[start:start + MAX_TXN_OPS])

    async def _fetch_offsets(self, group_id, wanted):
        prefix = self.keys.offsets(group_id)
        offsets = {}
        for kv in (await self.client.range(prefix, prefix=True)).kvs:
            key = self.keys.topic_partition(kv.key)
            if wanted is None or key in wanted:
                offsets[key] = layout.decode_offset(kv.value)
        return offsets

    async def _delete_offsets(self, group_id, partitions):
        deletes = [Op.delete(self.keys.offset(group_id, topic, partition)) for topic, partition in partitions]
        for start in range(0, len(deletes), MAX_TXN_OPS):
            await self.client.txn([], success=deletes[start:start + MAX_TXN_OPS])

    async def _broker_configs(self):
        reply = await self.client.range(self.keys.area("broker_configs/"), prefix=True)
        return {self.keys.broker_config_resource(kv.key): layout.decode_configs(kv.value) for kv in reply.kvs}

    def _alter_broker_configs(self, resource, updates, deletions):
        return self._alter_configs(self.keys.broker_configs(resource), updates, deletions,
                                   f"broker resource {resource!r}")

    async def _group_configs(self, group_id):
        kv = await self.client.get(self.keys.group_configs(group_id))
        return {} if kv is None else layout.decode_configs(kv.value)

    def _alter_group_configs(self, group_id, updates, deletions):
        return self._alter_configs(self.keys.group_configs(group_id), updates, deletions, f"group {group_id}")

    async def _alter_configs(self, key, updates, deletions, what):
        """Set ``updates`` and remove ``deletions`` in the configs kept at
        ``key`` (the key goes with the last of them), by compare-and-swap.
        -> the configs after."""
        for _ in range(CAS_ATTEMPTS):
            kv = await self.client.get(key)
            current = {} if kv is None else layout.decode_configs(kv.value)
            configs = with_changes(current, updates, deletions)
            unchanged = (Compare.create_revision(key, "=", 0) if kv is None
                         else Compare.mod_revision(key, "=", kv.mod_revision))
            write = Op.put(key, layout.encode_configs(configs)) if configs else Op.delete(key)
            if (await self.client.txn([unchanged], success=[write])).succeeded:
                return configs
        raise MetadataUnavailable(f"the configs of {what} kept changing under this write")

    async def _save_group(self, group_id, value):
        await self.client.put(self.keys.group(group_id), value)

    async def _load_group(self, group_id):
        kv = await self.client.get(self.keys.group(group_id))
        return None if kv is None else layout.decode_group(kv.value)

    async def _groups(self):
        reply = await self.client.txn([], success=[
            Op.range(self.keys.area("groups/"), prefix=True, keys_only=True),
            Op.range(self.keys.area("offsets/"), prefix=True, keys_only=True),
        ])
        names = set()
        for kv in reply.responses[0].kvs + reply.responses[1].kvs:
            names.add(self.keys.group_id(kv.key))
        return sorted(names)

    async def _delete_group(self, group_id):
        reply = await self.client.txn([], success=[
            Op.delete(self.keys.group(group_id)),
            Op.delete(self.keys.offsets(group_id), prefix=True),
        ])
        return sum(result.deleted for result in reply.responses) > 0

    # SCRAM credentials

    def set_scram_credential(self, user, credential):
        return self._run(self.client.put, self.keys.scram_credential(user, credential.mechanism),
                         layout.encode_scram_credential(credential))

    def delete_scram_credential(self, user, mechanism):
        return self._run(self._delete_scram_credential, user, mechanism)

    def scram_credentials(self, user=None):
        return self._run(self._scram_credentials, user)

    async def _delete_scram_credential(self, user, mechanism):
        return (await self.client.delete(self.keys.scram_credential(user, mechanism))).deleted > 0

    async def _scram_credentials(self, user):
        users = {}
        for kv in (await self.client.range(self.keys.scram_credentials(user), prefix=True)).kvs:
            name, mechanism = self.keys.user_mechanism(kv.key)
            users.setdefault(name, {})[mechanism] = layout.decode_scram_credential(mechanism, kv.value)
        return users if user is None else users.get(user, {})

    # Transactions: a key's mod revision is its version.

    def load_transaction(self, transactional_id):
        return self._run(self._load_transaction, transactional_id)

    def save_transaction(self, transactional_id, state, expected_version):
        return self._run(self._save_transaction, transactional_id, layout.encode_transaction(state), expected_version)

    def transactions(self):
        return self._run(self._transactions)

    def delete_transaction(self, transactional_id, expected_version):
        return self._run(self._delete_transaction, transactional_id, expected_version)

    async def _load_transaction(self, transactional_id):
        kv = await self.client.get(self.keys.transaction(transactional_id))
        return None if kv is None else (layout.decode_transaction(kv.value), kv.mod_revision)

    async def _save_transaction(self, transactional_id, value, expected_version):
        key = self.keys.transaction(transactional_id)
        written = await self.client.txn([Compare.mod_revision(key, "=", expected_version)],
                                        success=[Op.put(key, value)])
        if not written.succeeded:
            raise TransactionConflict(f"transaction {transactional_id!r} is not at version {expected_version}")
        return written.header_revision

    async def _delete_transaction(self, transactional_id, expected_version):
        key = self.keys.transaction(transactional_id)
        deleted = await self.client.txn([Compare.mod_revision(key, "=", expected_version)],
                                        success=[Op.delete(key)])
        return deleted.succeeded

    async def _transactions(self):
        reply = await self.client.range(self.keys.area("transactions/"), prefix=True)
        return {self.keys.transactional_id(kv.key): (layout.decode_transaction(kv.value), kv.mod_revision) for kv in reply.kvs}

    # ACLs and client quotas

    def acls(self):
        return self._run(self._acls)

    def create_acls(self, bindings):
        return self._run(self._create_acls, tuple(bindings))

    def delete_acls(self, filters):
        return self._run(self._delete_acls, tuple(filters))

    def client_quotas(self):
        return self._run(self._client_quotas)

    def alter_client_quotas(self, alterations):
        return self._run(self._alter_client_quotas, tuple((entity, dict(changes)) for entity, changes in alterations))

    async def _acls(self):
        reply = await self.client.range(self.keys.area("acls/"), prefix=True)
        return [layout.decode_acl(kv.value) for kv in reply.kvs]

    async def _create_acls(self, bindings):
        # etcd refuses a transaction that puts one key twice. A put is
        # idempotent, so more than one transaction's worth goes in several:
        # a failure part-way leaves some created, as Kafka's CreateAcls may,
        # and the client's retry completes them.
        puts = [Op.put(key, value) for key, value in
                {self.keys.acl(binding): layout.encode_acl(binding) for binding in bindings}.items()]
        for start in range(0, len(puts), MAX_TXN_OPS):
            await self.client.txn([], success=puts[start:start + MAX_TXN_OPS])

    async def _delete_acls(self, filters):
        for _ in range(CAS_ATTEMPTS):
            reply = await self.client.range(self.keys.area("acls/"), prefix=True)
            stored = [(kv, layout.decode_acl(kv.value)) for kv in reply.kvs]
            matched = [[(kv, binding) for kv, binding in stored if acl_filter.matches(binding)]
                       for acl_filter in filters]
            doomed = {kv.key: kv for found in matched for kv, _ in found}
            if len(doomed) > MAX_TXN_OPS // 2:
                raise MetadataError(f"{len(doomed)} ACLs at once: at most {MAX_TXN_OPS // 2}")
            deleted = await self.client.txn(
                [Compare.mod_revision(key, "=", kv.mod_revision) for key, kv in doomed.items()],
                success=[Op.delete(key) for key in doomed])
            if deleted.succeeded:
                return [[binding for _, binding in found] for found in matched]
        raise MetadataUnavailable("the ACLs kept changing under a delete")

    async def _client_quotas(self):
        reply = await self.client.range(self.keys.area("quotas/"), prefix=True)
        return {self.keys.quota_entity(kv.key): layout.decode_quotas(kv.value) for kv in reply.kvs}

    async def _alter_client_quotas(self, alterations):
        keys = [self.keys.quota(entity) for entity, _ in alterations]
        for _ in range(CAS_ATTEMPTS):
            reply = await self.client.txn([], success=[Op.range(key) for key in keys])
            compares, ops = [], []
            for key, (_, changes), read in zip(keys, alterations, reply.responses):
                kv = read.kvs[0] if read.kvs else None
                values = {} if kv is None else layout.decode_quotas(kv.value)
                for name, value in changes.items():
                    if value is None:
                        values.pop(name, None)
                    else:
                        values[name] = value
                compares.append(Compare.mod_revision(key, "=", 0 if kv is None else kv.mod_revision))
                ops.append(Op.put(key, layout.encode_quotas(values)) if values else Op.delete(key))
            if (await self.client.txn(compares, success=ops)).succeeded:
                return
        raise MetadataUnavailable("client quotas kept changing under an alteration")

    # Brokers and the session lease

    def register_broker(self, info, exclusive=False):
        return self._run(self._register_broker, info, exclusive)

    def deregister_broker(self, node_id):
        self._registered.pop(node_id, None)
        return self._run(self._release, self.keys.broker(node_id))

    def brokers(self):
        return self._run(self._brokers)

    @property
    def current_session(self):
        return self._session

    def session(self):
        return self._run(self._current_session)

    async def _register_broker(self, info, exclusive):
        session = await self._current_session()
        key = self.keys.broker(info.node_id)
        put = Op.put(key, layout.encode_broker(info), lease=session.lease_id)
        if exclusive:
            kv = await self.client.get(key)
            if kv is not None and kv.lease != session.lease_id:
                raise NodeIdInUse(f"node id {info.node_id} is registered by another live broker")
            compare = Compare.mod_revision(key, "=", 0 if kv is None else kv.mod_revision)
            if not (await self.client.txn([compare], success=[put])).succeeded:
                # Unless the client retried this very put after losing its answer.
                kv = await self.client.get(key)
                if kv is None or kv.lease != session.lease_id:
                    raise NodeIdInUse(f"node id {info.node_id} was just registered by another broker")
        else:
            await self.client.txn([], success=[put])
        self._registered[info.node_id] = info

    async def _brokers(self):
        reply = await self.client.range(self.keys.area("brokers/"), prefix=True)
        return sorted((layout.decode_broker(kv.value) for kv in reply.kvs), key=lambda broker: broker.node_id)

    async def _current_session(self):
        async with self._session_lock:
            if self._session is not None and not self._session.lost:
                return self._session
            lost, self._session = self._session, None
            if lost is not None:
                # Its keys may outlive our hold on it if etcd never saw it
                # expire: delete them now rather than at etcd's leisure.
                try:
                    await self.client.lease_revoke(lost.lease_id)
                except LeaseNotFound:
                    pass
            session = LeaseKeeper(self.client, self.lease_ttl, self._session_lost, clock=self._reactor)
            await session.start()
            for info in list(self._registered.values()):
                await self.client.put(self.keys.broker(info.node_id), layout.encode_broker(info), lease=session.lease_id)
            self._session = session
            return session

    def _session_lost(self, error):
        # Our registrations (and owner keys) are gone or about to be. Tell
        # subscribers, and register again under a new lease.
        self._notify(frozenset({"brokers"}))
        if self._registered and self.running:
            Deferred.fromCoroutine(self._renew_session()).addErrback(
                lambda failure: log.failure("Cannot renew the etcd session", failure))

    async def _renew_session(self):
        delay = 0.1
        while self.running and (self._session is None or self._session.lost):
            try:
                await self._translating(self._current_session)
            except MetadataUnavailable as error:
                log.warn("etcd session not renewed yet: {error}", error=error)
                await deferLater(self._reactor, delay)
                delay = min(2 * delay, 2.0)
                continue
            self._notify(frozenset({"brokers"}))
