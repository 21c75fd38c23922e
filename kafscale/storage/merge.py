"""Background merging, the second stage of the storage pipeline (DESIGN.md,
"Storage at scale"): a partition's small manifest entries (one per flush)
are rewritten into segments of up to ``segment.bytes``, so that the
manifest, the objects and a cold reader's GETs grow with the bytes written,
not with the number of flushes.

The owner of a partition merges it, off the ack path, one merge at a time
per broker:

1. `plan_merges` picks runs of consecutive small entries (below half of
   ``segment.bytes``) that have been in the manifest for at least the merge
   delay. In the run still growing at the log's end, a run does not start
   with an entry larger than the rest of the run, so every byte is
   rewritten only a logarithmic number of times while a trickle of small
   flushes comes in; once the partition is quiet, or a larger entry closes
   the run, everything that fits is merged.
2. `Merger.merge` reads each entry's frame (from the cache, else one GET
   of its byte range: a whole v1 segment or a slice of a multi-partition
   object), verifies it, lays the batches out again as one v1 segment and
   uploads it with its index under a key of its own.
3. The replaced entries are swapped for the new one in one compare-and-swap
   on the owner's leader epoch (`IMetadataStore.replace_segments`). A new
   owner's claim or a retention run in between fails the swap, and the new
   objects, which nothing names, are deleted (or left to ``segments gc``).
4. The replaced objects are deleted once in-flight readers are done with
   them: ``delete_delay_ms`` after the swap. A broker that stops first
   deletes them as it stops; one that dies leaves them to ``segments gc``.
   A multi-partition object is never deleted here (other partitions'
   entries may name it): the controller's collector (kafscale.storage.gc)
   removes it once none does.

Reads, uploads and deletes are paced (requests and bytes per second), the
CPU work (CRC checks, layout) runs on a worker thread, and a merge holds at
most one output segment and its inputs in memory.

Compaction of keyed topics (kafscale.storage.compaction) is the stage
after merging, in the same pass and under the same pacing: a partition whose
cleanup policy compacts is compacted once its merges are done, its outputs
swapped in by the same `replace_segments` and its replaced objects deleted
the same way. Merging leaves compacted segments alone.
"""

import os
import time
import weakref
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, DeferredSemaphore, TimeoutError, gatherResults
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.threads import deferToThread

from kafscale.log import logger
from kafscale.metadata.interfaces import Fenced, ManifestChanged, MetadataError, SegmentRef
from kafscale.storage.compaction import Compactor, cleanable_end, dirty_state, due, is_compacted
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.segment import CorruptSegment, build_segment, index_key, partition_prefix, read_segment
from kafscale.turns import Turns

log = logger("kafscale.storage.merge")


@dataclass(frozen=True, slots=True)
class MergeSettings:
    delay_ms: int = 30_000
    """An entry is merged once it has been in the manifest this long: the
    tail is read from the cache meanwhile, and merges take many flushes at
    once."""
    check_interval_ms: int = 5_000
    """How often the owned partitions are looked at."""
    delete_delay_ms: int = 60_000
    """How long replaced objects stay after a merge, for readers that found
    them in the manifest before it."""
    requests_per_second: float = 50.0
    """GETs, PUTs and DELETEs a broker's merging may issue per second."""
    bytes_per_second: int = 32 << 20
    """Bytes a broker's merging may read (and write again) per second."""
    max_inputs: int = 1000
    """Entries one merge takes at most."""
    compaction_max_keys: int = 1_000_000
    """Keys one compaction pass maps at most (memory: about 100 bytes a key
    plus the key)."""


# At a stop, the replaced objects still waiting are deleted this many at
# once, for at most this long.
STOP_DELETES_AT_ONCE = 8
STOP_DELETES_SECONDS = 5


def is_small(ref, segment_bytes):
    """Whether ``ref`` is worth merging: any two adjacent small entries fit
    in one segment together. A compacted segment's offsets have gaps: only
    compaction rewrites it."""
    return ref.size * 2 < segment_bytes and not is_compacted(ref)


def plan_merges(segments, start, segment_bytes, eligible, quiet, max_inputs=1000):
    """Which runs of ``segments`` (a sequence of SegmentRefs) to merge,
    looking from index ``start`` on. ``eligible(ref)`` says whether an entry
    is old enough; ``quiet`` whether the log has stopped growing for now.

    -> (list of (first, stop) index ranges, each of at least two entries
    holding at most ``segment_bytes``; the index before which nothing will
    ever need merging again, from where the next plan may start)."""
    merges = []
    settled = None
    index = start
    count = len(segments)
    while index < count:
        if not is_small(segments[index], segment_bytes):
            index += 1
            continue
        run_start = index
        while index < count and is_small(segments[index], segment_bytes):
            index += 1
        run_end = index
        # A larger entry after the run closes it: nothing will join it.
        closed = run_end < count
        ready = run_start
        while ready < run_end and eligible(segments[ready]):
            ready += 1
        before = len(merges)
        _pack(segments, run_start, ready, segment_bytes, closed or quiet, max_inputs, merges)
        if settled is None and not (closed and ready == run_end and len(merges) == before):
            settled = run_start
    return merges, count if settled is None else settled


def _pack(segments, first, stop, segment_bytes, take_all, max_inputs, merges):
    """Greedy runs of at least two entries within ``[first, stop)``."""
    index = first
    while index < stop:
        total = 0
        end = index
        while end < stop and end - index < max_inputs and total + segments[end].size <= segment_bytes:
            total += segments[end].size
            end += 1
        if end - index < 2:
            index += 1
            continue
        if not take_all and segments[index].size > total - segments[index].size:
            # Rewriting a large entry for a few small ones again and again
            # would cost more than it saves: let the small ones catch up.
            index += 1
            continue
        merges.append((index, end))
        index = end


class Pacer:
    """A leaky bucket: each call waits until the requests and bytes before
    it fit in the configured rates."""

    def __init__(self, reactor, requests_per_second, bytes_per_second):
        self._reactor = reactor
        self._request_cost = 1 / requests_per_second
        self._byte_cost = 1 / bytes_per_second
        self._free_at = 0.0

    async def wait(self, size=0):
        now = self._reactor.seconds()
        start = max(now, self._free_at)
        self._free_at = start + self._request_cost + size * self._byte_cost
        if start > now:
            await deferLater(self._reactor, start - now)


def merged_key(topic, topic_id, partition, base_offset, leader_epoch):
    """A key for a merged segment no other upload shares: a merge whose swap
    fails, or a deposed owner's, cannot overwrite an object in use."""
    return (f"{partition_prefix(topic, topic_id, partition)}"
            f"segment-{base_offset:020d}-{leader_epoch}-m{os.urandom(6).hex()}.kfs")


def _layout(frames, base_offset):
    """Verify the input frames and lay their batches out as one segment (a
    worker thread's job). -> (kfs, index, SegmentInfo)."""
    segments = [read_segment(data, key) for key, data in frames]
    return build_segment([segment.batches for segment in segments], base_offset,
                         created_ms=int(time.time() * 1000))


class Merger:
    """Merges runs of one broker's partitions, paced by ``pacer``."""

    def __init__(self, pacer):
        self.pacer = pacer

    async def merge(self, partition_log, refs):
        """Rewrite ``refs`` (consecutive entries of ``partition_log``'s
        manifest) as one segment and swap it in. -> the new PartitionState,
        or None when the swap was refused (a new owner, retention), in
        which case nothing changed. Raises ObjectStoreError, MetadataError,
        CorruptSegment."""
        epoch = partition_log.leader_epoch
        frames = [(ref.key, await self.frame(partition_log, ref)) for ref in refs]
        base = refs[0].base_offset
        kfs, index, info = await deferToThread(_layout, frames, base)
        del frames
        if (info.last_offset, info.count) != (refs[-1].last_offset, sum(ref.count for ref in refs)):
            raise CorruptSegment(refs[0].key, f"merged inputs hold offsets {base}-{info.last_offset},"
                                              f" the manifest says {base}-{refs[-1].last_offset}")
        key = merged_key(partition_log.topic, partition_log.topic_id, partition_log.partition, base, epoch)
        # The aborted-transaction index and the open transactions stay with
        # the offsets they describe.
        merged = SegmentRef(base, info.last_offset, info.max_timestamp, info.size, info.count, key,
                            aborted=tuple(entry for ref in refs for entry in ref.aborted), open=refs[-1].open)
        # The index goes first: a committed merged segment always has one.
        await self.pacer.wait(len(index))
        await partition_log.objects.put(index_key(key), index)
        await self.pacer.wait(len(kfs))
        await partition_log.objects.put(key, kfs)
        del kfs, index
        try:
            state = await partition_log.metadata.replace_segments(
                partition_log.topic, partition_log.partition, epoch, refs, [merged])
        except (Fenced, ManifestChanged) as refused:
            log.info("{topic}-{partition}: merge of {count} segments dropped: {why}", topic=partition_log.topic,
                     partition=partition_log.partition, count=len(refs), why=refused)
            await self.delete([merged], partition_log.objects)
            return None
        partition_log.adopt(state)
        return state

    async def frame(self, partition_log, ref):
        """The entry's segment frame: a whole format-1 object, or its slice
        of a multi-partition object."""
        if ref.format == 1:
            cached = partition_log.cache.get(ref)
            if cached is not None:
                return cached.data
        await self.pacer.wait(ref.size)
        return await partition_log.objects.get(ref.key, ref.position, ref.position + ref.size)

    async def delete(self, refs, objects, cache=None, paced=True):
        """Delete the objects of ``refs`` (and their indexes), logging the
        ones that fail: those are left to ``segments gc``."""
        for ref in refs:
            for key in (ref.key, index_key(ref.key)):
                if paced:
                    await self.pacer.wait()
                try:
                    await objects.delete(key)
                except ObjectStoreError as error:
                    log.warn("deleting {key} failed, leaving an orphan for `segments gc`: {error}",
                             key=key, error=error)
            if cache is not None:
                cache.discard(ref)


class MergeService(Service):
    """Every ``settings.check_interval_ms``, merges what `plan_merges` picks
    in each partition of ``logs`` (a mapping of (topic, partition) to the
    PartitionLogs the broker owns), one merge at a time, then deletes the
    replaced objects ``settings.delete_delay_ms`` later; ``clock`` is an
    IReactorTime.

    Passes never overlap, and stopping waits for the one running, then
    deletes the replaced objects still waiting."""

    name = "merge"

    def __init__(self, logs, settings, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.logs = logs
        self.settings = settings
        self.reactor = clock
        self.merger = Merger(Pacer(clock, settings.requests_per_second, settings.bytes_per_second))
        self.compactor = Compactor(self.merger, settings.compaction_max_keys)
        self._loop = None
        self._lock = DeferredLock()
        # Per PartitionLog (a new owner's log starts afresh): when each
        # entry was first seen, and the offset from which planning starts.
        self._seen = weakref.WeakKeyDictionary()
        self._settled = weakref.WeakKeyDictionary()
        # Per compacted PartitionLog: the earliest delete horizon of the
        # tombstones its last compaction kept.
        self._horizons = weakref.WeakKeyDictionary()
        self.compacted_bytes = 0
        """Bytes of segments compaction replaced since the start."""
        self.dirty_ratios = weakref.WeakKeyDictionary()
        """Per compacted PartitionLog: its dirty ratio as its last look saw it."""
        self._doomed = []  # (due time, objects, cache, refs)

    def startService(self):
        super().startService()
        self._loop = LoopingCall(self._lock.run, self.run_once)
        self._loop.clock = self.reactor
        self._loop.start(self.settings.check_interval_ms / 1000, now=False).addErrback(
            lambda failure: log.failure("merging stopped", failure))

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        await self._lock.acquire()
        try:
            # No reader of this broker's is left; the partitions' next
            # owners read the manifests the merges left. A stop is not
            # held up for long: what is not deleted by then is gc's.
            doomed, self._doomed = self._doomed, []
            slots = DeferredSemaphore(STOP_DELETES_AT_ONCE)
            deletes = gatherResults([
                slots.run(lambda refs, objects, cache: Deferred.fromCoroutine(
                    self.merger.delete(refs, objects, cache, paced=False)), refs, objects, cache)
                for _, objects, cache, refs in doomed])
            try:
                await deletes.addTimeout(STOP_DELETES_SECONDS, self.reactor)
            except TimeoutError:
                log.warn("stopping before every object merges replaced was deleted: `segments gc` will")
        finally:
            self._lock.release()

    async def run_once(self):
        """One pass: the deletes that are due, then every owned partition."""
        await self._delete_due()
        turns = Turns(self.reactor)
        for partition_log in list(self.logs.values()):
            await turns.tick()
            if not self.running:
                return
            if partition_log.closed:
                continue
            try:
                await self._merge_partition(partition_log)
                if partition_log.settings.compaction is not None and self.running and not partition_log.closed:
                    await self._compact_partition(partition_log)
            except (ObjectStoreError, MetadataError, CorruptSegment) as error:
                log.warn("merging {topic}-{partition} failed: {error}", topic=partition_log.topic,
                         partition=partition_log.partition, error=error)
            except Exception:
                # One partition's trouble must not stop merging for the rest.
                log.failure("merging {topic}-{partition} failed", topic=partition_log.topic,
                            partition=partition_log.partition)
            await self._delete_due()

    async def _merge_partition(self, partition_log):
        segments = partition_log.state.segments
        now = self.reactor.seconds()
        delay = self.settings.delay_ms / 1000
        settled = self._settled.get(partition_log, -1)
        start = max(segments.find(settled), 0) if settled >= 0 else 0
        if settled >= 0 and start < len(segments) and segments[start].base_offset < settled:
            start += 1
        old_seen = self._seen.get(partition_log, {})
        seen = {ref.key: old_seen.get(ref.key, now) for ref in segments[start:]}
        self._seen[partition_log] = seen
        if not seen:
            return
        quiet = now - seen[segments[-1].key] >= delay
        merges, settled_index = plan_merges(
            segments, start, partition_log.settings.segment_bytes,
            lambda ref: now - seen[ref.key] >= delay, quiet, self.settings.max_inputs)
        if settled_index > start:
            self._settled[partition_log] = (segments[settled_index].base_offset
                                            if settled_index < len(segments) else partition_log.high_watermark)
        for first, stop in merges:
            if not self.running or partition_log.closed:
                return
            refs = list(segments[first:stop])
            state = await self.merger.merge(partition_log, refs)
            if state is None:
                return
            # The merged segment is as old as its oldest input: a young age
            # would hold back the entries after it for a whole delay.
            merged = state.segments[state.segments.find(refs[0].base_offset)]
            seen[merged.key] = min(seen[ref.key] for ref in refs)
            log.debug("{topic}-{partition}: merged {count} segments at {base}", topic=partition_log.topic,
                      partition=partition_log.partition, count=len(refs), base=refs[0].base_offset)
            # A multi-partition object may still hold other partitions'
            # slices: the collector deletes it once no manifest names it.
            own = [ref for ref in refs if ref.format == 1]
            if own:
                self._doomed.append((self.reactor.seconds() + self.settings.delete_delay_ms / 1000,
                                     partition_log.objects, partition_log.cache, own))

    async def _compact_partition(self, partition_log):
        settings = partition_log.settings.compaction
        segments = partition_log.state.segments
        now = self.reactor.seconds()
        now_ms = int(now * 1000)
        delay = self.settings.delay_ms / 1000
        seen = self._seen.get(partition_log, {})
        end = cleanable_end(segments, now_ms, settings,
                            lambda ref: ref.key not in seen or now - seen[ref.key] >= delay)
        state = dirty_state(segments, end)
        self.dirty_ratios[partition_log] = state.ratio
        if not due(state, segments, settings, now_ms, self._horizons.get(partition_log)):
            return
        started = self.reactor.seconds()
        result = await self.compactor.compact(partition_log, state, now_ms)
        if result.complete:
            self._horizons[partition_log] = result.horizon_ms
        self.compacted_bytes += result.input_bytes
        if result.replaced:
            segments = partition_log.state.segments
            self.dirty_ratios[partition_log] = dirty_state(segments, min(end, len(segments))).ratio
        if result.replaced:
            log.info("{topic}-{partition}: compacted {input} bytes in {count} segments to {output} bytes"
                     " ({read} bytes read, {seconds:.2f}s)", topic=partition_log.topic,
                     partition=partition_log.partition, input=result.input_bytes, count=len(result.replaced),
                     output=result.output_bytes, read=result.read_bytes, seconds=self.reactor.seconds() - started)
        own = [ref for ref in result.replaced if ref.format == 1]
        if own:
            self._doomed.append((self.reactor.seconds() + self.settings.delete_delay_ms / 1000,
                                 partition_log.objects, partition_log.cache, own))

    async def _delete_due(self):
        now = self.reactor.seconds()
        while self._doomed and self._doomed[0][0] <= now and self.running:
            _, objects, cache, refs = self._doomed.pop(0)
            await self.merger.delete(refs, objects, cache)
