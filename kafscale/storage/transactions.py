"""Transactions in one partition's log: which are open, which were aborted,
and the last stable offset (LSO).

Everything here is derived from the manifest, so it survives a change of
owner, merging and retention with no state of its own: each manifest entry
carries the transactions open at its end and the aborted transactions whose
ABORT marker it holds (SegmentRef.open and .aborted). A flush computes them
for its entry from the committed entry before it and the batches it takes
(:func:`slice_transactions`); one flush of a partition runs at a time, so
the entry before is always the committed one.
"""

import bisect
from typing import NamedTuple


class Marker(NamedTuple):
    """A COMMIT or ABORT marker waiting in a partition's buffer."""

    producer_id: int
    producer_epoch: int
    commit: bool


def open_transactions(state):
    """-> {producer id: first offset} of the transactions open in ``state``
    (a PartitionState) at its next offset."""
    if not state.segments:
        return {}
    return dict(state.segments[-1].open)


def last_stable_offset(state):
    """The offset below which every transaction is decided: the first
    offset of the oldest open transaction, or the high watermark."""
    if state.segments:
        open_ = state.segments[-1].open
        if open_:
            return min(first for _, first in open_)
    return state.next_offset


def slice_transactions(state, taken):
    """-> (aborted, open) for the manifest entry that commits ``taken``,
    [(base offset, batch header or Marker)] in offset order, after
    ``state``: the entry's SegmentRef.aborted and .open."""
    open_ = open_transactions(state)
    aborted = []
    for offset, item in taken:
        if isinstance(item, Marker):
            first = open_.pop(item.producer_id, None)
            if first is not None and not item.commit:
                aborted.append((item.producer_id, first, offset))
        elif item.is_transactional and item.producer_id not in open_:
            open_[item.producer_id] = offset
    return tuple(aborted), tuple(sorted(open_.items()))


class AbortedIndex:
    """The aborted transactions of a manifest, by the offset of their ABORT
    marker: what a read_committed Fetch returns for the range it reads."""

    def __init__(self, segments=()):
        self._entries = sorted((entry for ref in segments for entry in ref.aborted), key=lambda entry: entry[2])
        self._ends = [last for _, _, last in self._entries]
        self._longest = max((last - first for _, first, last in self._entries), default=0)

    def add(self, entries):
        """Take up the aborted transactions of a newly committed entry,
        whose markers come after every one known."""
        for entry in entries:
            self._entries.append(entry)
            self._ends.append(entry[2])
            self._longest = max(self._longest, entry[2] - entry[1])

    def covers(self, info):
        """Whether the batch ``info`` (a BatchInfo) belongs to an aborted
        transaction (what compaction drops)."""
        return info.is_transactional and any(
            producer_id == info.producer_id for producer_id, _ in self.overlapping(info.base_offset, info.base_offset))

    def overlapping(self, first, last):
        """-> [(producer id, first offset)] of the aborted transactions with
        records in ``[first, last]``: those whose marker is at or after
        ``first`` and that began at or before ``last``."""
        found = []
        position = bisect.bisect_left(self._ends, first)
        # A transaction spans at most _longest offsets: past that, none began
        # at or before ``last``.
        limit = last + self._longest
        while position < len(self._entries) and self._ends[position] <= limit:
            producer_id, start, _ = self._entries[position]
            if start <= last:
                found.append((producer_id, start))
            position += 1
        return found
