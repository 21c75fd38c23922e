"""The broker's flusher: one object per flush, whatever the partition count.

A flush takes the buffered batches of every partition this broker holds
(up to ``segment.bytes`` from each, about ``flush_bytes`` in all), assigns
each partition's offsets from its committed next offset, writes ONE
format-2 object (kafscale.storage.object_format) holding a slice per
partition, then commits every partition's slice in the metadata store at
once (IMetadataStore.commit_segments), each still a compare-and-swap on its
leader epoch and expected next offset. Each partition's producers are
answered once the object is stored and their partition's commit landed; a
partition whose commit is refused (fenced) fails its own producers alone.
So a broker's PUTs follow its flush rate, not its partition count.

When a flush starts is the latency/cost knob (``FlushSettings``):

- ``interval_ms`` 0 (the default): group commit. A flush starts as soon as
  batches wait and no flush is running; what arrives meanwhile goes in the
  next one. Lowest latency; PUTs bounded by the object store's latency.
- ``interval_ms`` N: a window. A flush starts N ms after the first batch
  waiting for it arrived (or once the previous flush ended, if later), so
  at most about 1000/N PUTs a second, for N ms more latency.
- Either way, a flush starts at once when ``flush_bytes`` wait.

One flush runs at a time, so a partition's flushes commit in order.
"""

import time
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

from zope.interface import Interface

from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError, SegmentCommit, SegmentRef
from kafscale.storage.object_format import FORMAT, SliceBatches, build_object, object_key
from kafscale.storage.segment import Segment

log = logger("kafscale.storage.flusher")


@dataclass(frozen=True, slots=True)
class FlushSettings:
    interval_ms: int = 0
    """0: group commit (flush as soon as the previous flush is done); else
    the window a flush waits for more batches."""
    flush_bytes: int = 8 << 20
    """Waiting bytes that start a flush at once, and about the most one
    object carries (at least one partition's batches)."""


class IFlushObserver(Interface):
    """Told what each flush cost and carried (for metrics)."""

    def flushed(upload_seconds, commit_seconds, records, size, waits):
        """A flush stored its object in ``upload_seconds`` and committed it
        in ``commit_seconds``: ``records`` records in batches of ``size``
        bytes (as produced) landed,
        and ``waits`` holds, per batch acknowledged, the seconds since it
        was appended."""


class Flusher(Service):
    """Flushes for every PartitionLog of one broker (``node_id``), into
    ``objects``, committed in ``metadata``, telling ``observer`` (an
    IFlushObserver, if any). A child of the broker's service tree: stopping
    it waits for the flush under way."""

    name = "flusher"

    def __init__(self, *, node_id, objects, metadata, settings, reactor, observer=None):
        self.observer = observer
        self.node_id = node_id
        self.objects = objects
        self.metadata = metadata
        self.settings = settings
        self.reactor = reactor
        self._waiting = {}  # PartitionLog -> None, in the order they began waiting
        self._waiting_bytes = 0
        self._flushing = None
        self._starting = None
        self._in_flight = set()
        self._window = None
        self._due = False
        self._urgent = False
        self._flush_ended = []

    def configure(self, settings):
        self.settings = settings

    # -- what partition logs call --------------------------------------

    def added(self, partition_log, size):
        """``partition_log`` buffered ``size`` more bytes."""
        self._waiting[partition_log] = None
        self._waiting_bytes += size
        self._schedule()

    async def drain(self, partition_log):
        """Flush ``partition_log``'s buffered batches now, window or not;
        -> once none are left buffered or in a flush."""
        while partition_log.has_pending() or (self._flushing is not None and partition_log in self._in_flight):
            self._urgent = True
            self._schedule()
            ended = Deferred()
            self._flush_ended.append(ended)
            await ended

    # -- lifetime ------------------------------------------------------

    def stopService(self):
        super().stopService()
        for call in (self._window, self._starting):
            if call is not None and call.active():
                call.cancel()
        self._window = self._starting = None
        if self._flushing is None:
            return None
        ended = Deferred()
        self._flush_ended.append(ended)
        return ended

    # -- when to flush -------------------------------------------------

    def _schedule(self):
        if not self._waiting:
            return
        interval = self.settings.interval_ms
        if interval and self._window is None and not self._due:
            # The window opens when the first batch for the next flush
            # arrives, even while a flush runs.
            self._window = self.reactor.callLater(interval / 1000, self._window_over)
        if self._flushing is not None:
            return
        if self._starting is not None and not self._urgent:
            return
        if interval and not (self._due or self._urgent or self._waiting_bytes >= self.settings.flush_bytes):
            return
        if self._urgent:
            # A partition closing wants its batches out now.
            self._start()
            return
        # On the next turn of the reactor: every partition a produce request
        # (or the requests read in this turn) appended to joins this flush.
        self._starting = self.reactor.callLater(0, self._start)

    def _start(self):
        if self._starting is not None:
            if self._starting.active():
                self._starting.cancel()
            self._starting = None
        if self._window is not None:
            if self._window.active():
                self._window.cancel()
            self._window = None
        self._due = self._urgent = False
        self._in_flight = set()
        # Set before the flush runs: taking a partition's batches makes room
        # for the appends it held, which tell this flusher while it takes.
        flushing = self._flushing = Deferred()
        flushing.addBoth(self._ended)
        Deferred.fromCoroutine(self._flush()).chainDeferred(flushing)

    def _window_over(self):
        self._window = None
        self._due = True
        self._schedule()

    def _ended(self, result):
        if isinstance(result, Failure):
            log.failure("flush failed", result)
        self._flushing = None
        self._in_flight = set()
        ended, self._flush_ended = self._flush_ended, []
        self._schedule()
        for waiter in ended:
            waiter.callback(None)

    # -- one flush -----------------------------------------------------

    def _take(self):
        """Take batches from the waiting partitions, oldest waiting first,
        until about ``flush_bytes``. -> [TakenBatches]."""
        taken = []
        size = 0
        for partition_log in list(self._waiting):
            if size >= self.settings.flush_bytes:
                break
            del self._waiting[partition_log]
            if partition_log.closed or not partition_log.has_pending():
                continue
            batches = partition_log.take_slice()
            taken.append(batches)
            size += sum(entry.size for entry in batches.entries)
            if partition_log.has_pending():
                # More than one flush's worth: it waits again, at the back.
                self._waiting[partition_log] = None
        self._waiting_bytes = sum(partition_log.pending_bytes for partition_log in self._waiting)
        return taken

    async def _flush(self):
        self._in_flight = set(self._waiting)
        # Partitions whose last commit has an unknown outcome look first.
        doubtful = [partition_log for partition_log in self._in_flight
                    if partition_log.in_doubt and not partition_log.closed]
        if doubtful:
            await gatherResults([Deferred.fromCoroutine(partition_log.prepare_flush())
                                 for partition_log in doubtful])
        taken = self._take()
        if not taken:
            return
        created_ms = int(time.time() * 1000)
        key = object_key(self.node_id, created_ms)
        data, directory = build_object(
            [SliceBatches(t.log.topic, t.log.topic_id, t.log.partition, t.base_offset, t.blobs) for t in taken],
            created_ms)
        started = time.monotonic()
        try:
            await self.objects.put(key, data)
        except Exception as error:
            for batches in taken:
                batches.log.failed(batches, error)
            return
        refs = [SegmentRef(entry.base_offset, entry.last_offset, entry.max_timestamp, entry.size, entry.count,
                           key, entry.position, FORMAT, t.aborted, t.open) for t, entry in zip(taken, directory)]
        commits = [SegmentCommit(t.log.topic, t.log.partition, t.leader_epoch, t.base_offset, ref)
                   for t, ref in zip(taken, refs)]
        uploaded = time.monotonic()
        try:
            results = await self.metadata.commit_segments(commits)
        except MetadataError as error:
            # Nothing or some of it may have landed: each partition finds out.
            results = [error] * len(commits)
        except Exception as error:
            log.failure("commit of {key} failed", key=key)
            for batches in taken:
                batches.log.failed(batches, error)
            return
        committed = time.monotonic()
        view = memoryview(data)
        settling = []
        records = size = 0
        waits = []
        for batches, ref, result in zip(taken, refs, results):
            segment = Segment(key, view[ref.position:ref.position + ref.size], 0, ref.base_offset,
                              ref.last_offset, ref.count, created_ms, ref.max_timestamp, ref.position)
            if isinstance(result, MetadataError):
                settling.append(Deferred.fromCoroutine(batches.log.settle(batches, segment, ref, result)))
            else:
                batches.log.committed(batches, result, segment)
                records += ref.count
                for entry in batches.entries:
                    size += entry.size
                    waits.append(committed - entry.appended)
        if self.observer is not None:
            self.observer.flushed(uploaded - started, committed - uploaded, records, size, waits)
        if settling:
            await gatherResults(settling)
