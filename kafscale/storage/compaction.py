"""Compaction of keyed topics (cleanup.policy=compact), a stage of the
background merge (kafscale.storage.merge): the owner of a partition rewrites
its older segments keeping only the latest record of each key, as Kafka's
log cleaner does.

A partition's manifest is read as Kafka reads a log:

- the *clean* section: the leading entries that compaction wrote (their
  keys say so, `is_compacted`);
- the *dirty* section: the entries after it, up to the first that is not
  yet cleanable;
- the rest is never compacted: entries the merge has not settled yet (the
  active tail), entries whose newest record is younger than
  min.compaction.lag.ms, and the newest entry until its newest record is
  segment.ms old (Kafka's active segment, which rolls after segment.ms).

A partition is compacted once its dirty bytes are min.cleanable.dirty.ratio
of clean and dirty together, once its oldest dirty entry is older than
max.compaction.lag.ms, or once a tombstone it kept may go. A pass

1. reads the dirty section and maps each key to its latest offset there;
2. rewrites the clean and dirty sections, entry by entry, into segments of
   up to ``segment.bytes``: a record stays unless a later one has its key,
   it has no key, or it is a tombstone past its delete horizon. Batches
   keep their base offset and last offset delta, so offsets never change
   and the log has gaps; a batch that loses every record is dropped,
   unless it is its idempotent producer's last (its bare header is kept,
   as Kafka does, so the producer's state can be rebuilt from the log);
3. swaps each output segment for the entries it replaces with the merge's
   fenced `IMetadataStore.replace_segments`, so a crash at any point leaves
   either the old entries or the new one (and orphans for ``segments gc``).

Tombstones follow Kafka's two-pass rule (KIP-534): the pass that first
keeps a tombstone stamps its batch with a delete horizon, now plus
delete.retention.ms (attribute bit 6, in the batch's first timestamp);
passes after the horizon drop it. So a consumer that reads a compacted
partition to its end within delete.retention.ms sees every delete.

Transactions, as Kafka's cleaner treats them: compaction never goes past
an entry with a transaction open at its end (so every transactional record
it reads is decided); a committed transaction's records are compacted like
any others, an aborted one's are dropped (the entries' aborted index says
which), and control batches (the markers) are kept.
"""

import os
import re
import time
from dataclasses import dataclass

from twisted.internet.threads import deferToThread

from kafscale.log import logger
from kafscale.metadata.interfaces import Fenced, ManifestChanged, SegmentRef
from kafscale.metadata.topic_configs import cleanup_policies, effective, effective_int
from kafscale.protocol.batches import read_records, rewrite_batch
from kafscale.protocol.records import DELETE_HORIZON_MASK, iter_batches
from kafscale.storage.segment import build_segment, index_key, partition_prefix, read_segment
from kafscale.storage.transactions import AbortedIndex

log = logger("kafscale.storage.compaction")

_COMPACTED_KEY = re.compile(r".*/segment-\d{20}-\d+-c[0-9a-f]{12}\.kfs")


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """A compacted topic's settings, from its configs."""

    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = 2**63 - 1
    delete_retention_ms: int = 86_400_000
    segment_ms: int = 604_800_000

    @classmethod
    def of(cls, configs):
        """The settings of a topic with ``configs``, or None when its
        cleanup policy does not compact."""
        if "compact" not in cleanup_policies(configs):
            return None
        return cls(float(effective(configs, "min.cleanable.dirty.ratio")),
                   effective_int(configs, "min.compaction.lag.ms"),
                   effective_int(configs, "max.compaction.lag.ms"),
                   effective_int(configs, "delete.retention.ms"),
                   effective_int(configs, "segment.ms"))


def compacted_key(topic, topic_id, partition, base_offset, leader_epoch):
    """The key of a segment compaction writes: unique like a merged one's,
    and telling that the segment is clean."""
    return (f"{partition_prefix(topic, topic_id, partition)}"
            f"segment-{base_offset:020d}-{leader_epoch}-c{os.urandom(6).hex()}.kfs")


def is_compacted(ref):
    """Whether ``ref`` is a segment compaction wrote (part of the clean section)."""
    return ref.format == 1 and _COMPACTED_KEY.fullmatch(ref.key) is not None


@dataclass(frozen=True, slots=True)
class DirtyState:
    """Where a partition's manifest is clean and dirty (indexes into it)."""

    first_dirty: int
    end: int
    """Entries from here on are not cleanable."""
    clean_bytes: int
    dirty_bytes: int

    @property
    def ratio(self):
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


def cleanable_end(segments, now_ms, settings, settled=lambda ref: True):
    """How many leading entries of ``segments`` compaction may take: not
    one the merge has not ``settled`` yet, nor one holding a record younger
    than min.compaction.lag.ms, nor one with a transaction open at its end
    (Kafka's cleaner stops at the first unstable offset), nor the newest
    while it is the active segment (its newest record younger than
    segment.ms: Kafka's roll)."""
    end = 0
    while end < len(segments):
        ref = segments[end]
        if not settled(ref) or ref.max_timestamp > now_ms - settings.min_compaction_lag_ms or ref.open:
            break
        if end == len(segments) - 1 and now_ms - ref.max_timestamp < settings.segment_ms:
            break
        end += 1
    return end


def dirty_state(segments, end):
    """The clean and dirty sections of ``segments[:end]``."""
    first_dirty = 0
    while first_dirty < end and is_compacted(segments[first_dirty]):
        first_dirty += 1
    clean = sum(ref.size for ref in segments[:first_dirty])
    dirty = sum(ref.size for ref in segments[first_dirty:end])
    return DirtyState(first_dirty, end, clean, dirty)


def due(state, segments, settings, now_ms, horizon_ms=None):
    """Whether a partition whose manifest is ``segments`` (DirtyState
    ``state``) needs compacting now; ``horizon_ms``: the earliest delete
    horizon of the tombstones the last pass kept, if known."""
    if horizon_ms is not None and now_ms >= horizon_ms and state.end > 0:
        return True
    if not state.dirty_bytes:
        return False
    if state.ratio >= settings.min_cleanable_dirty_ratio:
        return True
    return now_ms - segments[state.first_dirty].max_timestamp > settings.max_compaction_lag_ms


class KeyMap:
    """The latest offset of each key in the dirty section, and each
    idempotent producer's last batch there. Records of aborted transactions
    (``aborted``, an AbortedIndex of the manifest) and markers do not
    count."""

    def __init__(self, aborted=None):
        self.offsets = {}
        self.producers = {}
        self.aborted = aborted if aborted is not None else AbortedIndex()

    def add(self, data, key):
        """Map the keys of the entry ``data`` (its segment frame, from object
        ``key``): a worker thread's job."""
        segment = read_segment(data, key)
        offsets = self.offsets
        for info in iter_batches(segment.batches, verify_crc=False, compacted=True):
            if info.producer_id >= 0:
                self.producers[info.producer_id] = info.base_offset
            if info.is_control or self.aborted.covers(info):
                continue
            base = info.base_offset
            for record in read_records(segment.batches[info.position:info.position + info.size], info):
                if record.key is not None:
                    offsets[record.key] = base + record.offset_delta


@dataclass(slots=True)
class Filtered:
    """What compaction keeps of one entry."""

    batches: list
    size: int
    changed: bool
    """Whether anything was dropped or stamped."""
    horizon_ms: int | None
    """The earliest delete horizon of the tombstones kept, if any."""


def filter_entry(data, key, keys, now_ms, delete_retention_ms):
    """The batches of the entry ``data`` (its segment frame, from object
    ``key``) that compaction keeps under ``keys`` (a KeyMap): a worker
    thread's job. -> Filtered."""
    segment = read_segment(data, key)
    view = segment.batches
    batches = []
    size = 0
    changed = False
    earliest = None
    for info in iter_batches(view, verify_crc=False, compacted=True):
        blob = view[info.position:info.position + info.size]
        if info.is_control:
            batches.append(blob)
            size += info.size
            continue
        if keys.aborted.covers(info):
            changed = True
            if info.producer_id >= 0 and keys.producers.get(info.producer_id) == info.base_offset:
                rewritten = rewrite_batch(info, [], info.attributes & ~DELETE_HORIZON_MASK, info.first_timestamp)
                batches.append(rewritten)
                size += len(rewritten)
            continue
        records = read_records(blob, info)
        stamped = bool(info.attributes & DELETE_HORIZON_MASK)
        removable = stamped and now_ms >= info.first_timestamp
        base = info.base_offset
        kept = [record for record in records
                if record.key is not None and keys.offsets.get(record.key, -1) <= base + record.offset_delta
                and not (record.tombstone and removable)]
        tombstones = any(record.tombstone for record in kept)
        if len(kept) == len(records) and (stamped or not tombstones):
            batches.append(blob)
            size += info.size
            if tombstones:
                earliest = info.first_timestamp if earliest is None else min(earliest, info.first_timestamp)
            continue
        changed = True
        if not kept and not (info.producer_id >= 0 and keys.producers.get(info.producer_id) == base):
            continue
        attributes = info.attributes & ~DELETE_HORIZON_MASK
        if tombstones:
            horizon = info.first_timestamp if stamped else now_ms + delete_retention_ms
            attributes |= DELETE_HORIZON_MASK
            first_timestamp = horizon
            earliest = horizon if earliest is None else min(earliest, horizon)
        elif kept and not info.log_append_time:
            first_timestamp = kept[0].timestamp
        else:
            first_timestamp = info.first_timestamp
        rewritten = rewrite_batch(info, kept, attributes, first_timestamp)
        batches.append(rewritten)
        size += len(rewritten)
    return Filtered(batches, size, changed, earliest)


def _layout(batches, base_offset, last_offset):
    return build_segment(batches, base_offset, created_ms=int(time.time() * 1000), last_offset=last_offset)


@dataclass(slots=True)
class CompactionResult:
    read_bytes: int = 0
    """Bytes of the entries read (the dirty ones twice)."""
    input_bytes: int = 0
    """Bytes of the entries replaced."""
    output_bytes: int = 0
    """Bytes of the segments that replaced them."""
    replaced: list = None
    """The replaced SegmentRefs."""
    horizon_ms: int | None = None
    complete: bool = True
    """False when a swap was refused (a new owner, retention)."""


class Compactor:
    """Compacts partitions, reading and deleting through ``merger`` (the
    merge stage's Merger: its pacing and its deletes)."""

    def __init__(self, merger, max_keys=1_000_000):
        self.merger = merger
        self.max_keys = max_keys
        """Keys one pass maps at most: the dirty section it takes ends
        before the entry that would pass this."""

    async def compact(self, partition_log, state, now_ms):
        """Compact ``partition_log``'s manifest entries up to ``state.end``
        (a DirtyState of its current manifest). -> CompactionResult.
        Raises ObjectStoreError, MetadataError, CorruptSegment."""
        settings = partition_log.settings.compaction
        epoch = partition_log.leader_epoch
        segments = partition_log.state.segments
        result = CompactionResult(replaced=[])
        keys = KeyMap(AbortedIndex(segments[:state.end]))
        end = state.end
        for index in range(state.first_dirty, state.end):
            ref = segments[index]
            if index > state.first_dirty and len(keys.offsets) + ref.count > self.max_keys:
                end = index
                break
            data = await self.merger.frame(partition_log, ref)
            result.read_bytes += ref.size
            await deferToThread(keys.add, data, ref.key)
            del data
        group = []
        outputs = []
        output_size = 0
        earliest = []

        async def swap():
            nonlocal group, outputs, output_size
            replaced, batches = group, outputs
            group, outputs, output_size = [], [], 0
            if not replaced or not changed_in(replaced):
                return True
            return await self._swap(partition_log, epoch, replaced, batches, result)

        changed = set()

        def changed_in(refs):
            return len(refs) > 1 or refs[0].key in changed or not is_compacted(refs[0])

        for ref in segments[:end]:
            data = await self.merger.frame(partition_log, ref)
            result.read_bytes += ref.size
            kept = await deferToThread(filter_entry, data, ref.key, keys, now_ms, settings.delete_retention_ms)
            del data
            if kept.changed:
                changed.add(ref.key)
            if kept.horizon_ms is not None:
                earliest.append(kept.horizon_ms)
            if group and output_size + kept.size > partition_log.settings.segment_bytes:
                if not await swap():
                    result.complete = False
                    return result
            group.append(ref)
            outputs.extend(kept.batches)
            output_size += kept.size
        if not await swap():
            result.complete = False
            return result
        result.horizon_ms = min(earliest, default=None)
        return result

    async def _swap(self, partition_log, epoch, replaced, batches, result):
        base, last = replaced[0].base_offset, replaced[-1].last_offset
        kfs, index, info = await deferToThread(_layout, batches, base, last)
        del batches
        key = compacted_key(partition_log.topic, partition_log.topic_id, partition_log.partition, base, epoch)
        # The transactions these offsets hold stay described (SegmentRef.aborted, .open).
        compacted = SegmentRef(base, last, info.max_timestamp, info.size, info.count, key,
                               aborted=tuple(entry for ref in replaced for entry in ref.aborted),
                               open=replaced[-1].open)
        # The index goes first: a committed compacted segment always has one.
        await self.merger.pacer.wait(len(index))
        await partition_log.objects.put(index_key(key), index)
        await self.merger.pacer.wait(len(kfs))
        await partition_log.objects.put(key, kfs)
        del kfs, index
        try:
            state = await partition_log.metadata.replace_segments(
                partition_log.topic, partition_log.partition, epoch, replaced, [compacted])
        except (Fenced, ManifestChanged) as refused:
            log.info("{topic}-{partition}: compaction of {count} segments dropped: {why}",
                     topic=partition_log.topic, partition=partition_log.partition, count=len(replaced), why=refused)
            await self.merger.delete([compacted], partition_log.objects)
            return False
        partition_log.adopt(state)
        result.input_bytes += sum(ref.size for ref in replaced)
        result.output_bytes += compacted.size
        result.replaced.extend(replaced)
        return True
