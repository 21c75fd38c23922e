"""One owned partition's log: produced batches are buffered until the
broker's flusher takes them into an object with other partitions' batches
and commits them in the metadata store; reads serve committed data only."""

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import NamedTuple

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.threads import deferToThread

from kafscale.log import logger
from kafscale.metadata.interfaces import Fenced, MetadataError
from kafscale.protocol.records import assign_offsets, control_batch, iter_batches, iter_records
from kafscale.storage.errors import (
    CommitFailed,
    InvalidBatch,
    LogStartContended,
    NewerLeaderEpoch,
    NotOwner,
    OffsetOutOfRange,
    PartitionError,
    StaleLeaderEpoch,
    StaleProducerEpoch,
    StorageUnavailable,
    TransactionNotVerified,
)
from kafscale.storage.interfaces import ObjectNotFound, ObjectStoreError
from kafscale.storage.producer_state import ProducerStates
from kafscale.storage.transactions import AbortedIndex, Marker, last_stable_offset, open_transactions, slice_transactions
from kafscale.storage.segment import (
    CorruptSegment,
    index_key,
    read_index,
    read_range,
    read_segment,
)

log = logger("kafscale.storage.partition_log")


@dataclass(frozen=True, slots=True)
class LogSettings:
    segment_bytes: int = 8 << 20
    """The most one flush takes from this partition."""
    max_buffer_bytes: int = 64 << 20
    """Bytes a partition may hold unflushed before further batches are held
    (waiting, in arrival order, for the flushes to make room)."""
    whole_segment_limit: int = 32 << 20
    """Segments up to this size are fetched whole into the cache; larger
    ones are read in index-guided ranges."""
    producer_scan_bytes: int = 8 << 20
    producer_scan_segments: int = 16
    """A new owner rebuilds the idempotent producers' state from the last
    segments holding this many bytes, at most this many segments (at least
    the last one). A retry whose original was committed before that window
    is not known as a duplicate: it is refused as OutOfOrderSequence when
    later batches of its producer are in the window, and is appended again
    when none are. Retries come within seconds (a client's
    delivery.timeout.ms is 2 minutes), so the window needs to hold only the
    last few flushes."""
    producer_id_expiration_ms: int = 86_400_000
    """Kafka's producer.id.expiration.ms: idle producers are forgotten."""
    compaction: object = None
    """The topic's CompactionSettings (kafscale.storage.compaction) when its
    cleanup policy compacts, else None."""


class BufferBudget:
    """Unflushed bytes across every partition of a broker, bounded by
    ``max_bytes``. Partitions whose batches do not fit wait their turn, and
    get room in the order they began waiting (:meth:`wait`)."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.used = 0
        # Partition logs waiting for room, in the order they began waiting.
        self._waiting = {}
        self._serving = False

    def fits(self, size):
        # A batch larger than the whole budget still goes, alone.
        return self.used == 0 or self.used + size <= self.max_bytes

    def reserve(self, size):
        """Take ``size`` bytes if they fit and no one waits for room ahead.
        -> whether they were taken."""
        if self._waiting or not self.fits(size):
            return False
        self.used += size
        return True

    def take(self, size):
        """Take ``size`` bytes if they fit, in a waiter's turn."""
        if not self.fits(size):
            return False
        self.used += size
        return True

    def add(self, size):
        """Count ``size`` bytes already in memory, whatever the bound."""
        self.used += size

    def wait(self, waiter):
        """Call ``waiter.room()`` when room may have come, in turn with the
        waiters before it, until it answers that it waits no more."""
        self._waiting[waiter] = None

    def withdraw(self, waiter):
        self._waiting.pop(waiter, None)

    def release(self, size):
        self.used -= size
        if self._serving:
            return
        self._serving = True
        try:
            while self._waiting:
                waiter = next(iter(self._waiting))
                if not waiter.room():
                    break
                self._waiting.pop(waiter, None)
        finally:
            self._serving = False


class _Append:
    __slots__ = ("blob", "batches", "size", "done", "on_failure", "base_offset", "sequence", "reserved", "admitted",
                 "appended", "marker")

    def __init__(self, blob, batches, on_failure, marker=None):
        self.appended = time.monotonic()
        """When it was appended, for the append-to-acknowledgement latency."""
        self.blob = blob
        self.batches = batches
        self.size = len(blob)
        self.done = Deferred()
        self.on_failure = on_failure
        self.base_offset = None
        self.sequence = None
        """The PendingBatch of an idempotent producer's batch."""
        self.reserved = False
        """Whether its size is counted in the buffers (False while held)."""
        self.admitted = None
        """Deferreds waiting for it to leave the held batches."""
        self.marker = marker
        """The Marker of a transaction marker's control batch."""


class TakenBatches(NamedTuple):
    """A partition's batches as a flush took them (PartitionLog.take_slice)."""

    log: "PartitionLog"
    entries: list
    blobs: list
    """The entries' blobs with their offsets assigned."""
    base_offset: int
    leader_epoch: int
    aborted: tuple = ()
    open: tuple = ()
    """The slice's SegmentRef.aborted and .open."""


class PartitionLog:
    """Appends, flushes and reads for a partition this broker owns at
    ``state.leader_epoch``.

    Appends wait in the partition's buffer for the broker's ``flusher``
    (kafscale.storage.flusher.Flusher), whose flushes take them with those
    of every other partition into one object, then commit each partition's
    slice. Offsets are assigned when a flush takes the batches
    (:meth:`take_slice`), so a failed flush leaves no gap: its producers get
    a retriable error and the next flush starts at the same offset.

    A busy partition never refuses a batch: when its buffer
    (``max_buffer_bytes``) or the broker's ``budget`` is full, the batch is
    held, with every later one behind it, and buffered in arrival order as
    the flushes make room; :meth:`until_admitted` tells the caller, who
    stops reading its producer meanwhile. Only a failed flush fails
    batches: its own and every batch buffered or held behind it, each
    append's ``on_failure`` called first, so that its caller takes nothing
    more from that producer: a non-idempotent producer's retry must not be
    overtaken by the requests it sent after the failed one.

    Batches of idempotent producers (with a producer id) are checked against
    the partition's :class:`ProducerStates` before they are buffered: a
    retry of a committed or pending batch is answered with the original's
    base offset and not appended again. A failed flush takes its batches
    back out of that state, and fails the buffered batches of the same
    producers behind them, which would otherwise commit after a gap. The
    state is rebuilt from the tail of the log when the first idempotent
    batch arrives (lazily: claiming many partitions reads nothing), and
    idempotent batches wait for it.
    """

    def __init__(self, state, *, topic_id, metadata, objects, cache, budget, settings, reactor, holder, flusher):
        """``holder`` (an IPartitionHolder) says whether appends may go on,
        and hears when another owner deposed this log; ``flusher`` (the
        broker's Flusher) takes the buffered batches."""
        self.holder = holder
        self.topic = state.topic
        self.topic_id = topic_id
        self.partition = state.partition
        self.metadata = metadata
        self.objects = objects
        self.cache = cache
        self.budget = budget
        self.settings = settings
        self.reactor = reactor
        self.flusher = flusher
        self.state = None
        self._set_state(state)
        self._pending = deque()
        self._pending_bytes = 0
        # Appends waiting for room in the buffers, in arrival order.
        self._held = deque()
        self._listeners = set()
        self._closed = False
        self._producers = None
        self._loading_producers = None
        self._awaiting_producers = deque()
        # A commit failed without telling whether it landed: re-read the
        # committed state before writing again.
        self._in_doubt = False
        # Producer id -> epoch of the producers whose ongoing transaction
        # its coordinator confirmed holds this partition (KIP-890): their
        # transactional batches are admitted until their marker is buffered.
        self._verified = {}
        # Producer id -> how many markers were buffered for it: a
        # verification that began before a marker does not count after it.
        self._marker_counts = {}
        self._aborted = None  # AbortedIndex, built on the first read_committed fetch

    # -- state ---------------------------------------------------------

    def _set_state(self, state):
        if self.state is not None and state.log_start_offset < self.state.log_start_offset:
            # A commit the store applied before an advance of the log start,
            # but answered after it: the log start never moves back.
            start = self.state.log_start_offset
            state = replace(state, log_start_offset=start,
                            segments=tuple(s for s in state.segments if s.last_offset >= start))
        self.state = state

    def adopt(self, state):
        """Take up ``state``, which the metadata store returned for a write
        other than this log's own commits (a merge's swap of manifest
        entries), unless it belongs to another owner or this log is closed."""
        if not self._closed and state.leader_epoch == self.state.leader_epoch \
                and state.next_offset >= self.state.next_offset:
            self._set_state(state)

    @property
    def leader_epoch(self):
        return self.state.leader_epoch

    @property
    def high_watermark(self):
        return self.state.next_offset

    @property
    def log_start_offset(self):
        return self.state.log_start_offset

    @property
    def closed(self):
        return self._closed

    def configure(self, settings):
        self.settings = settings

    def check_leader_epoch(self, epoch):
        """Refuse a request made for another leader epoch (-1: unchecked)."""
        if epoch == -1 or epoch == self.state.leader_epoch:
            return
        if epoch < self.state.leader_epoch:
            raise StaleLeaderEpoch(f"epoch {epoch} is older than {self.state.leader_epoch}")
        raise NewerLeaderEpoch(f"epoch {epoch} is newer than {self.state.leader_epoch}")

    def epoch_at(self, offset):
        """The leader epoch that wrote ``offset`` (or the current one for the
        log end), from the epoch history."""
        epoch = self.state.leader_epoch
        for entry_epoch, start in reversed(self.state.epoch_history):
            if start <= offset:
                return entry_epoch
        return epoch

    # -- produce -------------------------------------------------------

    def append(self, blob, batches, on_failure=None):
        """Queue validated batches (``blob`` with ``batches`` from
        iter_batches). -> Deferred firing with the base offset once they are
        committed, or failing with a PartitionError. A batch with a producer id
        comes alone, as Produce v3+ carries it; a retry of one is answered
        with the original's base offset. When the buffers are full, the
        batches are held until there is room (:meth:`until_admitted`).
        ``on_failure()`` is called when a failed flush fails them, before
        the Deferred fails."""
        if self._closed:
            raise NotOwner(f"{self.topic}-{self.partition} is not owned here")
        if not self.holder.may_append(self.topic, self.partition):
            raise NotOwner(f"{self.topic}-{self.partition}: this broker's hold on it is in doubt")
        idempotent = any(batch.producer_id >= 0 for batch in batches)
        if idempotent and len(batches) != 1:
            raise InvalidBatch("a batch with a producer id must come alone")
        for batch in batches:
            if batch.is_transactional and self._verified.get(batch.producer_id) != batch.producer_epoch:
                raise TransactionNotVerified(f"producer {batch.producer_id} has no verified transaction"
                                             f" in {self.topic}-{self.partition}")
        entry = _Append(blob, batches, on_failure)
        if self._held or not self._fits(entry.size):
            self._hold(entry)
        elif self.budget.reserve(entry.size):
            self._take_in(entry)
        else:
            self._hold(entry)
            self.budget.wait(self)
        return entry.done

    def until_admitted(self):
        """None when no append waits for room here; else a Deferred firing
        once every append waiting now has been buffered (or failed)."""
        if not self._held:
            return None
        entry = self._held[-1]
        if entry.admitted is None:
            entry.admitted = []
        admitted = Deferred()
        entry.admitted.append(admitted)
        return admitted

    @property
    def holding(self):
        """Whether appends wait here for room in the buffers."""
        return bool(self._held)

    def _fits(self, size):
        # A batch larger than the whole buffer still goes, alone.
        return self._pending_bytes == 0 or self._pending_bytes + size <= self.settings.max_buffer_bytes

    def _hold(self, entry):
        self._held.append(entry)

    @staticmethod
    def _tell_admitted(entry):
        """``entry`` left the held appends: tell who waits for it, once it
        is buffered or failed (they may append again at once)."""
        waiters, entry.admitted = entry.admitted, None
        for waiter in waiters or ():
            waiter.callback(None)

    def _admit_held(self, in_turn=False):
        """Buffer the held appends, oldest first, while they fit. ->
        whether this log no longer waits for the broker's budget."""
        while self._held and not self._closed:
            size = self._held[0].size
            if not self._fits(size):
                # Its own flushes make room, and call again.
                return True
            if not (self.budget.take(size) if in_turn else self.budget.reserve(size)):
                if not in_turn:
                    self.budget.wait(self)
                return False
            entry = self._held.popleft()
            self._take_in(entry)
            self._tell_admitted(entry)
        return True

    def room(self):
        """The broker's budget has room, maybe, and it is this log's turn."""
        return self._admit_held(in_turn=True)

    def _take_in(self, entry):
        entry.reserved = True
        self._pending_bytes += entry.size
        if all(batch.producer_id < 0 for batch in entry.batches):
            self._buffer(entry)
        elif self._producers is not None:
            self._admit(entry)
        else:
            self._awaiting_producers.append(entry)
            if self._loading_producers is None:
                self._loading_producers = Deferred.fromCoroutine(self._load_producers())
                self._loading_producers.addBoth(self._producers_loaded)

    def _buffer(self, entry):
        self._pending.append(entry)
        self.flusher.added(self, entry.size)

    # -- transactions ----------------------------------------------------

    @property
    def last_stable_offset(self):
        return last_stable_offset(self.state)

    def verification_token(self, producer_id):
        """-> what :meth:`admit_transaction` checks, taken before asking the
        coordinator whether the producer's transaction holds this partition."""
        return self._marker_counts.get(producer_id, 0)

    def admit_transaction(self, producer_id, producer_epoch, token):
        """The coordinator confirmed that ``producer_id`` at
        ``producer_epoch`` has an ongoing transaction holding this
        partition: admit its transactional batches until its marker. ->
        False, admitting nothing, when a marker for it was buffered since
        ``token`` was taken (the transaction the answer spoke of may be over)."""
        if self._marker_counts.get(producer_id, 0) != token:
            return False
        self._verified[producer_id] = producer_epoch
        return True

    def is_admitted(self, producer_id, producer_epoch):
        """Whether transactional batches of the producer are admitted now."""
        return self._verified.get(producer_id) == producer_epoch

    def write_marker(self, producer_id, producer_epoch, commit, coordinator_epoch=0):
        """Append a COMMIT (``commit``) or ABORT marker for the producer's
        transaction, through the same buffer, flush and fenced commit as
        data. -> Deferred firing with its offset once committed; fails with
        StaleProducerEpoch when the partition knows a newer epoch of the
        producer, or with a PartitionError as appends do."""
        if self._closed:
            raise NotOwner(f"{self.topic}-{self.partition} is not owned here")
        if not self.holder.may_append(self.topic, self.partition):
            raise NotOwner(f"{self.topic}-{self.partition}: this broker's hold on it is in doubt")
        blob = control_batch(producer_id, producer_epoch, commit, coordinator_epoch, self._now_ms())
        entry = _Append(blob, list(iter_batches(blob)), None, Marker(producer_id, producer_epoch, commit))
        # No transactional batch of this producer is admitted past its marker.
        self._verified.pop(producer_id, None)
        self._marker_counts[producer_id] = self._marker_counts.get(producer_id, 0) + 1
        # Never held for room: ending transactions is what frees it.
        self.budget.add(entry.size)
        self._take_in(entry)
        return entry.done

    async def active_producers(self):
        """-> [(producer id, epoch, last sequence, last seen ms, first
        offset of its open transaction or -1)] of the producers this
        partition knows."""
        if self._closed:
            raise NotOwner(f"{self.topic}-{self.partition} is not owned here")
        if self._producers is None:
            if self._loading_producers is None:
                self._loading_producers = Deferred.fromCoroutine(self._load_producers())
                self._loading_producers.addBoth(self._producers_loaded)
            loading = Deferred()
            self._loading_producers.addBoth(lambda result: (loading.callback(None), result)[1])
            await loading
            if self._producers is None:
                raise StorageUnavailable(f"{self.topic}-{self.partition}: producer state unreadable")
        open_ = open_transactions(self.state)
        return [(*entry, open_.get(entry[0], -1)) for entry in self._producers.summary()]

    def aborted_transactions(self, first, last):
        """-> [(producer id, first offset)] of the aborted transactions with
        records in ``[first, last]``, for a read_committed Fetch."""
        if self._aborted is None:
            self._aborted = AbortedIndex(self.state.segments)
        return self._aborted.overlapping(first, last)

    def _admit(self, entry):
        """Buffer an idempotent producer's batch, unless it repeats an
        earlier one or breaks the producer's sequence."""
        if entry.marker is not None:
            self._admit_marker(entry)
            return
        batch = entry.batches[0]
        original = self._producers.original(batch)
        if original is None:
            try:
                entry.sequence = self._producers.admit(batch, self._now_ms())
            except PartitionError as error:
                self._unreserve(entry)
                entry.done.errback(error)
                return
            self._buffer(entry)
            return
        self._unreserve(entry)
        original.chainDeferred(entry.done)

    def _admit_marker(self, entry):
        marker = entry.marker
        known = self._producers.epoch(marker.producer_id)
        if known is not None and known > marker.producer_epoch:
            self._unreserve(entry)
            entry.done.errback(StaleProducerEpoch(
                f"marker for producer {marker.producer_id} epoch {marker.producer_epoch}, which is older than {known}"))
            return
        # A marker at a newer epoch (the coordinator fencing a producer)
        # refuses the older epoch's batches from here on.
        self._producers.fence(marker.producer_id, marker.producer_epoch, self._now_ms())
        self._buffer(entry)

    def _unreserve(self, entry):
        entry.reserved = False
        self._pending_bytes -= entry.size
        self.budget.release(entry.size)

    def _now_ms(self):
        return int(self.reactor.seconds() * 1000)

    async def _load_producers(self):
        try:
            producers = await self._read_producers()
        except Exception as error:
            failure = self._failure(error)
            while self._awaiting_producers:
                entry = self._awaiting_producers.popleft()
                self._unreserve(entry)
                entry.done.errback(failure)
        else:
            if not self._closed:
                self._producers = producers
                while self._awaiting_producers:
                    self._admit(self._awaiting_producers.popleft())

    def _producers_loaded(self, _):
        self._loading_producers = None

    async def _read_producers(self):
        """A ProducerStates rebuilt from the batch headers of the log's last
        segments (LogSettings.producer_scan_bytes and _segments)."""
        tail = []
        size = 0
        for ref in reversed(self.state.segments):
            if tail and (size >= self.settings.producer_scan_bytes
                         or len(tail) >= self.settings.producer_scan_segments):
                break
            tail.append(ref)
            size += ref.size
        tail.reverse()
        try:
            segments = await gatherResults([self._segment_or_none(ref) for ref in tail], consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()
        # What precedes an unreadable segment may be stale: start after it.
        while None in segments:
            segments = segments[segments.index(None) + 1:]
        producers = ProducerStates(self.settings.producer_id_expiration_ms)
        now_ms = self._now_ms()
        # Many small batches make this a few hundred milliseconds of work:
        # off the reactor thread, on a table no one else sees yet.
        await deferToThread(_load_segments, producers, segments, now_ms)
        return producers

    async def _resync(self):
        """Re-read the committed state after a commit whose outcome was not
        known. -> the segments committed since the state this log knew:
        commits of its own that landed after all, whose batches join the
        producers' state. Raises Fenced when the partition has a new owner."""
        current = await self.metadata.partition_state(self.topic, self.partition)
        if current.leader_epoch != self.state.leader_epoch:
            raise Fenced(self.topic, self.partition, current.leader_epoch, current.next_offset)
        landed = [ref for ref in current.segments if ref.base_offset >= self.state.next_offset]
        if landed and self._producers is not None:
            # One or two flushes' segments: loaded on the reactor thread,
            # since the live table is in use.
            segments = [await self._segment(ref) for ref in landed]
            _load_segments(self._producers, segments, self._now_ms())
        self._set_state(current)
        self._aborted = None
        self._in_doubt = False
        return landed

    def _segment_or_none(self, ref):
        def unreadable(failure):
            failure.trap(CorruptSegment)
            log.error("{topic}-{partition}: producer state skips {error}", topic=self.topic,
                      partition=self.partition, error=failure.value)
            return None

        return self._segment(ref).addErrback(unreadable)

    # -- flushing (driven by the broker's Flusher) ----------------------

    @property
    def pending_bytes(self):
        return self._pending_bytes

    def has_pending(self):
        return bool(self._pending)

    @property
    def in_doubt(self):
        """Whether the outcome of this partition's last commit is unknown."""
        return self._in_doubt

    async def prepare_flush(self):
        """Before the next flush takes this partition's batches: re-read the
        committed state if a commit's outcome is unknown. -> whether the
        batches may go; when not, they were failed (a commit of ours landed
        late, so some of them may repeat it; or the partition has a new
        owner)."""
        if not self._in_doubt:
            return True
        try:
            if await self._resync():
                # Batches of ours committed after all: some of the buffered
                # ones may repeat them. Their producers retry and learn which.
                raise MetadataError("an earlier commit landed late; retry")
        except Exception as error:
            self._fail(self._take_all(), error)
            return False
        return True

    def take_slice(self):
        """Take the buffered batches for a flush (at most ``segment_bytes``,
        at least one), with offsets assigned from the committed next offset.
        -> TakenBatches to hand back to :meth:`committed`, :meth:`failed`
        or :meth:`settle`."""
        entries = [self._pending.popleft()]
        size = entries[0].size
        while self._pending and size + self._pending[0].size <= self.settings.segment_bytes:
            entry = self._pending.popleft()
            entries.append(entry)
            size += entry.size
        self._pending_bytes -= size
        state = self.state
        offset = state.next_offset
        blobs = []
        items = []
        for entry in entries:
            entry.base_offset = offset
            if entry.marker is not None:
                items.append((offset, entry.marker))
            else:
                batch_offset = offset
                for batch in entry.batches:
                    if batch.is_transactional:
                        items.append((batch_offset, batch))
                    batch_offset += batch.last_offset_delta + 1
            patched, offset = assign_offsets(entry.blob, entry.batches, offset, state.leader_epoch)
            blobs.append(patched)
        aborted, open_ = slice_transactions(state, items) if items or self._has_open(state) else ((), ())
        taken = TakenBatches(self, entries, blobs, state.next_offset, state.leader_epoch, aborted, open_)
        # Room in the buffer: the appends held for it come in behind.
        self._admit_held()
        return taken

    @staticmethod
    def _has_open(state):
        return bool(state.segments) and bool(state.segments[-1].open)

    def _take_all(self):
        """Take every buffered and held append out. -> those entries, in
        arrival order."""
        entries = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        entries += self._held
        self._held.clear()
        self.budget.withdraw(self)
        return entries

    def committed(self, taken, state, segment):
        """The flush carrying ``taken`` stored it as ``segment`` (a verified
        Segment) and committed ``state``: answer its producers."""
        if self._aborted is not None:
            if taken.aborted and self.state.next_offset == taken.base_offset:
                self._aborted.add(taken.aborted)
            elif taken.aborted:
                self._aborted = None
        self._set_state(state)
        self.cache.put(segment)
        now_ms = self._now_ms()
        for entry in taken.entries:
            self.budget.release(entry.size)
            if entry.sequence is not None:
                self._producers.commit(entry.sequence, entry.base_offset, now_ms)
            entry.done.callback(entry.base_offset)
        self._wake()

    def failed(self, taken, error):
        """The flush carrying ``taken`` failed with ``error`` (its upload, or
        a commit known not to have landed): fail its producers and every
        batch buffered or held behind them, so that none overtakes the
        retries."""
        self._fail(taken.entries + self._take_all(), error)

    async def settle(self, taken, segment, ref, error):
        """The commit of ``ref`` (``segment``, carrying ``taken``) failed
        with the MetadataError ``error``, which may hide a commit that
        landed (a timeout) or one of ours already applied (a retry inside
        the store): find out, then answer ``taken`` accordingly. -> whether
        it landed."""
        # Answering a commit that landed with an error would have the
        # producers write their batches twice.
        self._in_doubt = True
        # What landed joins the producers' state from here, not from a GET.
        self.cache.put(segment)
        try:
            landed = await self._landed(ref)
        except Fenced as fenced:
            self.cache.discard(ref)
            self.failed(taken, fenced)
            return False
        if landed:
            self.committed(taken, self.state, segment)
            return True
        self.cache.discard(ref)
        if isinstance(error, Fenced):
            # Either a commit of ours landed late or a new owner took over:
            # the next flush re-reads the state first.
            error = MetadataError("the next offset moved under an ambiguous commit; retry")
        self.failed(taken, error)
        return False

    def _fail(self, entries, error):
        failure = self._failure(error)
        fenced = isinstance(failure, NotOwner)
        if fenced:
            # Closed before any producer hears of it, so none appends again.
            self._closed = True
        else:
            # Before any producer hears of it: nothing more is taken from
            # them that would overtake their retries.
            for entry in entries:
                if entry.on_failure is not None:
                    entry.on_failure()
        self._give_back(entries, failure)
        if fenced:
            self._fence()

    def _give_back(self, entries, failure):
        """Fail ``entries`` with ``failure``, the latest first (so that
        idempotent producers roll back in order), releasing their room."""
        for entry in reversed(entries):
            if entry.reserved:
                entry.reserved = False
                self.budget.release(entry.size)
            if entry.sequence is not None:
                self._producers.roll_back(entry.sequence, failure)
            entry.done.errback(failure)
        for entry in entries:
            self._tell_admitted(entry)

    def _failure(self, error):
        """What the appends that ``error`` failed fail with: a
        PartitionError saying what happened, or ``error`` itself when it is
        a bug (logged with its traceback)."""
        if isinstance(error, Fenced):
            return NotOwner(f"{self.topic}-{self.partition} has a new owner")
        if isinstance(error, ObjectStoreError):
            log.warn("{topic}-{partition}: segment upload failed: {error}", topic=self.topic,
                     partition=self.partition, error=error)
            return StorageUnavailable(f"object store: {error}")
        if isinstance(error, MetadataError):
            log.warn("{topic}-{partition}: commit failed: {error}", topic=self.topic,
                     partition=self.partition, error=error)
            return CommitFailed(f"metadata store: {error}")
        log.failure("{topic}-{partition}: flush failed", topic=self.topic, partition=self.partition)
        return error

    async def _landed(self, ref):
        """Whether ``ref`` is in the committed manifest, after a commit
        whose outcome is unknown; False while the store cannot tell. Raises
        Fenced when the partition has a new owner."""
        try:
            landed = await self._resync()
        except Fenced:
            raise
        except (MetadataError, ObjectStoreError, CorruptSegment) as error:
            log.warn("{topic}-{partition}: cannot tell whether a commit landed: {error}", topic=self.topic,
                     partition=self.partition, error=error)
            return False
        return ref in landed

    def _fence(self):
        self._closed = True
        entries = [*self._awaiting_producers, *self._take_all()]
        self._awaiting_producers.clear()
        self._give_back(entries, NotOwner("partition has a new owner"))
        self._wake()
        self.holder.deposed(self)

    async def close(self):
        """Flush what is buffered and held, then refuse further appends."""
        # What is held is in memory already: it goes into the buffer now,
        # whatever the bounds.
        held = list(self._held)
        self._held.clear()
        self.budget.withdraw(self)
        for entry in held:
            self.budget.add(entry.size)
            self._take_in(entry)
        for entry in held:
            self._tell_admitted(entry)
        if self._loading_producers is not None:
            # The batches waiting for the producers' state join the buffer.
            await self._loading_producers
        await self.flusher.drain(self)
        self._closed = True
        self._wake()

    # -- log start -----------------------------------------------------

    async def advance_log_start(self, new_start):
        """Raise the log start offset to ``new_start`` (DeleteRecords,
        retention), dropping the segments wholly below it from the manifest:
        a compare-and-swap on this owner's epoch. -> the removed SegmentRefs,
        whose objects are the caller's to delete. Raises PartitionError."""
        try:
            for _ in range(3):
                if self._closed:
                    raise NotOwner(f"{self.topic}-{self.partition} is not owned here")
                if not 0 <= new_start <= self.state.next_offset:
                    raise OffsetOutOfRange(f"offset {new_start} outside 0..{self.state.next_offset}")
                epoch = self.state.leader_epoch
                try:
                    state, removed = await self.metadata.advance_log_start(self.topic, self.partition, epoch, new_start)
                except Fenced:
                    # A racing commit of our own fails the swap too; only a
                    # new epoch means a new owner.
                    current = await self.metadata.partition_state(self.topic, self.partition)
                    if current.leader_epoch != epoch:
                        self._fence()
                        raise NotOwner(f"{self.topic}-{self.partition} has a new owner") from None
                    continue
                self._set_state(state)
                return removed
        except MetadataError as e:
            raise CommitFailed(f"metadata store: {e}") from None
        raise LogStartContended(f"{self.topic}-{self.partition}: commits kept racing the log start")

    # -- fetch ---------------------------------------------------------

    def add_listener(self, wake):
        """Call ``wake()`` after the next commits (and on close), until removed."""
        self._listeners.add(wake)

    def remove_listener(self, wake):
        self._listeners.discard(wake)

    def _wake(self):
        for wake in list(self._listeners):
            wake()

    def check_offset(self, offset):
        if self._closed:
            raise NotOwner(f"{self.topic}-{self.partition} is not owned here")
        state = self.state
        if not state.log_start_offset <= offset <= state.next_offset:
            raise OffsetOutOfRange(f"offset {offset} outside {state.log_start_offset}..{state.next_offset}")

    async def read(self, offset, max_bytes, min_one=True, max_offset=None):
        """Whole committed batches from the one holding ``offset``, across
        as many segments as ``max_bytes`` allows: a bytes-like object, empty
        at the high watermark. ``max_offset``: only batches below it (the
        last stable offset, for read_committed)."""
        if max_offset is not None and max_offset < self.state.next_offset:
            self.check_offset(offset)
            if offset >= max_offset:
                return b""
            return _below(await self.read(offset, max_bytes, min_one), max_offset)
        state = self.state
        try:
            return await self._read(offset, max_bytes, min_one)
        except ObjectNotFound:
            # A merge replaced a segment of the manifest this read used, and
            # its object is gone: read again from the current manifest.
            if state is self.state:
                try:
                    self.adopt(await self.metadata.partition_state(self.topic, self.partition))
                except MetadataError:
                    pass
            if state is self.state:
                raise
            return await self._read(offset, max_bytes, min_one)

    async def _read(self, offset, max_bytes, min_one):
        self.check_offset(offset)
        if max_bytes <= 0 and not min_one:
            return b""
        state = self.state
        position = max(state.segments.find(offset), 0)
        chunks = []
        size = 0
        ref = None
        while offset < state.next_offset and position < len(state.segments):
            ref = state.segments[position]
            if self._ranged(ref):
                if not chunks:
                    chunks.append(await self._read_range(ref, offset, max_bytes, min_one))
                break
            if ref not in self.cache and position + 1 < len(state.segments):
                # A cold read is a consumer catching up: the next segment's
                # GET runs while this one's does.
                self._read_ahead(state.segments[position + 1])
            segment = await self._segment(ref)
            data, whole = segment.read_to_end(max(offset, ref.base_offset), max_bytes - size,
                                              min_one and not chunks)
            if len(data):
                chunks.append(data)
                size += len(data)
            if not whole or size >= max_bytes:
                break
            offset = ref.last_offset + 1
            position += 1
        if ref is not None and position + 1 < len(state.segments) \
                and offset >= (ref.base_offset + ref.last_offset) // 2:
            # A consumer halfway through a segment will want the next one.
            self._read_ahead(state.segments[position + 1])
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def prefetch(self, offset):
        """Start loading the segment a read at ``offset`` will want, so that
        a fetch over many partitions waits for their GETs together rather
        than one after another. -> the size of that segment (0: none)."""
        state = self.state
        if self._closed or not state.log_start_offset <= offset < state.next_offset:
            return 0
        ref = state.segments[max(state.segments.find(offset), 0)]
        self._read_ahead(ref)
        return ref.size

    def _ranged(self, ref):
        """Whether ``ref`` is a segment too large to load whole, read in
        index-guided ranges instead (format 1 only: a slice of a shared
        object is at most one flush of its partition)."""
        return ref.format == 1 and ref.size > self.settings.whole_segment_limit

    def _segment(self, ref):
        return self.cache.load(ref, lambda: self._fetch_segment(ref))

    def _fetch_segment(self, ref):
        return fetch_entry(self.objects, ref)

    def _read_ahead(self, ref):
        if ref in self.cache or self._ranged(ref):
            return
        self._segment(ref).addErrback(
            lambda failure: log.warn("read-ahead of {key} failed: {error}", key=ref.key, error=failure.value)
        )

    async def _read_range(self, ref, offset, max_bytes, min_one):
        key = index_key(ref.key)
        try:
            index = read_index(await self.objects.get(key), key)
        except ObjectNotFound:
            # The owner died between the commit and the index upload.
            segment = await self._fetch_segment(ref)
            return segment.read(offset, max_bytes, min_one)
        start, end = index.byte_range(offset, max_bytes, ref.size)
        data = await self.objects.get(ref.key, start, end)
        return read_range(data, ref.key, offset, max_bytes, min_one)

    # -- timestamps ----------------------------------------------------

    async def offset_for_timestamp(self, target):
        """(offset, timestamp) of the first record whose timestamp is at
        least ``target``, or None."""
        for ref in self.state.segments:
            if ref.max_timestamp >= target:
                found = await self._first_record(ref, lambda record: record.timestamp >= target,
                                                 lambda batch: batch.max_timestamp >= target)
                if found is not None:
                    return found
        return None

    async def offset_of_max_timestamp(self):
        """(offset, timestamp) of the first record with the largest timestamp, or None."""
        if not self.state.segments:
            return None
        ref = max(self.state.segments, key=lambda s: s.max_timestamp)
        return await self._first_record(ref, lambda record: record.timestamp == ref.max_timestamp,
                                        lambda batch: batch.max_timestamp == ref.max_timestamp)

    async def _first_record(self, ref, record_matches, batch_may_match):
        segment = await self._segment(ref)
        # Decompressing is unbounded work per byte (iter_records bounds it):
        # never on the reactor.
        return await deferToThread(_first_record_in, segment.batches, self.state.log_start_offset,
                                   record_matches, batch_may_match)


def _below(data, limit):
    """The batches of ``data`` that start below offset ``limit``."""
    for batch in iter_batches(data, verify_crc=False):
        if batch.base_offset >= limit:
            return data[:batch.position]
    return data


def _first_record_in(batches, start, record_matches, batch_may_match):
    for batch in iter_batches(batches, verify_crc=False, compacted=True):
        if batch.last_offset < start or not batch_may_match(batch):
            continue
        for record in iter_records(batches[batch.position: batch.position + batch.size], with_data=False):
            if record.offset >= start and record_matches(record):
                return record.offset, record.timestamp
    return None


async def fetch_entry(objects, ref):
    """GET the bytes of the manifest entry ``ref`` alone (a whole format-1
    object, or one slice's range of a shared object) and verify them, off
    the reactor thread. -> Segment."""
    data = await objects.get(ref.key, ref.position, ref.position + ref.size)
    return await deferToThread(read_segment, data, ref.key, ref.position)


def _load_segments(producers, segments, now_ms):
    for segment in segments:
        producers.load_batches(segment.batches, now_ms)
