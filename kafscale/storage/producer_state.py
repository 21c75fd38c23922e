"""Idempotent producers' state in one partition: epochs and sequence numbers.

An idempotent producer numbers the records it sends to each partition, and
retries a batch it got no answer for with the same numbers. For each
producer id the partition keeps its epoch, the last few committed batches
(first and last sequence, base offset) and the batches still waiting for a
flush, which is all it needs to tell, as Kafka does:

- a retry of a committed batch: answered with the original base offset and
  not appended again;
- a retry of a batch still pending: answered when the original commits,
  with its offset;
- a gap or reordering: OutOfOrderSequence;
- a producer with an older epoch: StaleProducerEpoch; a newer epoch starts
  over at sequence 0;
- a producer it does not know (new, expired, or written before the part of
  the log it rebuilt its state from): accepted at any sequence.

Clients keep at most five batches in flight per partition with idempotence
on, so five committed batches per producer are enough to recognise every
retry. The state works per batch, never per record, and lives in memory: a
new owner rebuilds it from the tail of the log (``PartitionLog``).
"""

from collections import deque

from twisted.internet.defer import Deferred, succeed

from kafscale.storage.errors import InvalidBatch, OutOfOrderSequence, StaleProducerEpoch
from kafscale.protocol.records import iter_batches

RETAINED_BATCHES = 5
SEQUENCE_LIMIT = 1 << 31
"""Sequences are int32 that wrap from 2**31 - 1 to 0."""


def last_sequence(batch):
    """The sequence of ``batch``'s last record."""
    return (batch.base_sequence + batch.last_offset_delta) % SEQUENCE_LIMIT


class _Producer:
    """What a partition knows of one producer id, at one epoch."""

    __slots__ = ("producer_id", "epoch", "committed", "pending", "resume_after", "last_seen_ms")

    def __init__(self, producer_id, epoch, now_ms):
        self.producer_id = producer_id
        self.epoch = epoch
        self.committed = deque(maxlen=RETAINED_BATCHES)
        """(first sequence, last sequence, base offset), oldest first."""
        self.pending = deque()
        """PendingBatch, in the order they were admitted."""
        self.resume_after = None
        """With nothing committed, the sequence before the first batch that
        failed: its retry must come next."""
        self.last_seen_ms = now_ms

    def remember(self, first, last, base_offset):
        # A commit can also be read back from the log (after a commit of
        # unknown outcome): remember it once.
        entry = (first, last, base_offset)
        if entry not in self.committed:
            self.committed.append(entry)

    def last_sequence(self):
        if self.pending:
            return self.pending[-1].last_sequence
        if self.committed:
            return self.committed[-1][1]
        return self.resume_after


class PendingBatch:
    """A batch admitted to the buffer, not yet committed. Retries of it
    wait for its outcome through :meth:`follow`."""

    __slots__ = ("producer", "first_sequence", "last_sequence", "_followers")

    def __init__(self, producer, first_sequence, last_sequence):
        self.producer = producer
        self.first_sequence = first_sequence
        self.last_sequence = last_sequence
        self._followers = []

    def follow(self):
        """-> Deferred firing with the batch's base offset once it is
        committed, or failing as the batch itself fails."""
        follower = Deferred()
        self._followers.append(follower)
        return follower

    def _settle(self, fire, outcome):
        followers, self._followers = self._followers, []
        for follower in followers:
            fire(follower, outcome)


class ProducerStates:
    """The idempotent producers of one partition.

    Producers not seen for ``expiration_ms`` (Kafka's
    ``producer.id.expiration.ms``) are forgotten: every restart of a client
    brings a new producer id, so the table would otherwise only grow. Times
    are milliseconds on any clock the caller uses consistently.
    """

    def __init__(self, expiration_ms):
        self.expiration_ms = expiration_ms
        self._producers = {}
        self._next_sweep_ms = None

    def __len__(self):
        return len(self._producers)

    def __contains__(self, producer_id):
        return producer_id in self._producers

    def epoch(self, producer_id):
        """The current epoch of ``producer_id``, or None when it is unknown."""
        producer = self._producers.get(producer_id)
        return None if producer is None else producer.epoch

    def original(self, batch):
        """When ``batch`` repeats one of the producer's last batches (same
        epoch, same first and last sequence): a Deferred firing with the
        original's base offset, at once for a committed original, on its
        commit for a pending one. Otherwise None."""
        producer = self._producers.get(batch.producer_id)
        if producer is None or producer.epoch != batch.producer_epoch:
            return None
        first, last = batch.base_sequence, last_sequence(batch)
        for committed_first, committed_last, base_offset in producer.committed:
            if (committed_first, committed_last) == (first, last):
                return succeed(base_offset)
        for pending in producer.pending:
            if (pending.first_sequence, pending.last_sequence) == (first, last):
                return pending.follow()
        return None

    def admit(self, batch, now_ms):
        """Check a new batch (not an :meth:`original` repeat) against its
        producer's epoch and sequence, and record it as pending.
        -> PendingBatch, to :meth:`commit` or :meth:`roll_back` later.
        Raises StaleProducerEpoch, OutOfOrderSequence or InvalidBatch."""
        producer_id, epoch, first = batch.producer_id, batch.producer_epoch, batch.base_sequence
        if epoch < 0 or first < 0:
            raise InvalidBatch(f"producer {producer_id} sent epoch {epoch} and base sequence {first}")
        producer = self._producers.get(producer_id)
        if producer is not None and epoch < producer.epoch:
            raise StaleProducerEpoch(f"producer {producer_id} epoch {epoch} is older than {producer.epoch}")
        if producer is not None and epoch == producer.epoch:
            last = producer.last_sequence()
            if last is not None and first != (last + 1) % SEQUENCE_LIMIT:
                raise OutOfOrderSequence(f"producer {producer_id} sent sequence {first} after {last}")
        else:
            if producer is not None and first != 0:
                raise OutOfOrderSequence(f"producer {producer_id} starts epoch {epoch} at sequence {first}, not 0")
            # Batches of an older epoch still pending keep their own record.
            producer = self._producers[producer_id] = _Producer(producer_id, epoch, now_ms)
        pending = PendingBatch(producer, first, last_sequence(batch))
        producer.pending.append(pending)
        return pending

    def commit(self, pending, base_offset, now_ms):
        """``pending`` is committed at ``base_offset``: remember it among the
        producer's last batches and answer the retries waiting on it."""
        producer = pending.producer
        producer.pending.remove(pending)
        producer.remember(pending.first_sequence, pending.last_sequence, base_offset)
        producer.last_seen_ms = now_ms
        pending._settle(Deferred.callback, base_offset)
        self._expire(now_ms)

    def roll_back(self, pending, error):
        """``pending`` failed: forget it, so its retry is admitted, and fail
        the retries waiting on it with ``error``. The producer's batches
        behind it must be rolled back too (they would leave a gap), newest
        first: the producer then resumes at the oldest."""
        producer = pending.producer
        if not producer.committed and producer.pending[0] is pending:
            producer.resume_after = (pending.first_sequence - 1) % SEQUENCE_LIMIT
        producer.pending.remove(pending)
        pending._settle(Deferred.errback, error)

    def load_batches(self, blob, now_ms):
        """Learn the committed batches of ``blob`` (verified segment bytes,
        oldest first), reading their headers only: no checks, and a newer
        epoch replaces what was known of its producer."""
        for batch in iter_batches(blob, verify_crc=False, compacted=True):
            if batch.producer_id < 0:
                continue
            if batch.is_control:
                # A transaction marker carries no sequence; at a newer epoch
                # it fenced the older one.
                self.fence(batch.producer_id, batch.producer_epoch, now_ms)
                continue
            producer = self._producers.get(batch.producer_id)
            if producer is None or batch.producer_epoch > producer.epoch:
                producer = _Producer(batch.producer_id, batch.producer_epoch, now_ms)
                self._producers[batch.producer_id] = producer
            elif batch.producer_epoch < producer.epoch:
                continue
            producer.remember(batch.base_sequence, last_sequence(batch), batch.base_offset)
            producer.last_seen_ms = now_ms

    def summary(self):
        """-> [(producer id, epoch, last sequence or -1, last seen ms)]."""
        return [(p.producer_id, p.epoch, -1 if p.last_sequence() is None else p.last_sequence(), p.last_seen_ms)
                for p in self._producers.values()]

    def fence(self, producer_id, epoch, now_ms):
        """A transaction marker of ``producer_id`` at ``epoch``: from a newer
        epoch than known, the producer's older epochs are refused from here
        on, and the new one starts at sequence 0."""
        producer = self._producers.get(producer_id)
        if producer is None or epoch > producer.epoch:
            producer = self._producers[producer_id] = _Producer(producer_id, epoch, now_ms)
        producer.last_seen_ms = now_ms

    def _expire(self, now_ms):
        # A sweep visits every producer: run it a few times per expiration period.
        if self._next_sweep_ms is not None and now_ms < self._next_sweep_ms:
            return
        self._next_sweep_ms = now_ms + max(self.expiration_ms // 10, 1)
        cutoff = now_ms - self.expiration_ms
        expired = [producer_id for producer_id, producer in self._producers.items()
                   if not producer.pending and producer.last_seen_ms <= cutoff]
        for producer_id in expired:
            del self._producers[producer_id]
