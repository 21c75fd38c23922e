"""A partition's segment manifest as an immutable sequence whose commit costs
O(1), however many segments it lists.

Every commit appends one entry, and every state a store hands out is a
snapshot that must not change under its reader. Copying the tuple on each
commit made a commit cost O(manifest): 55 ms and 253 MiB of garbage per
commit at a million entries. Instead, successive states share one list
and each knows its own ``[start, end)`` window of it: appending when the
window ends at the list's end extends the list in place, which no earlier
state can see (their windows end before it). Dropping a prefix (retention)
moves ``start``. Only a replacement in the middle (a merge, once per
``segment.bytes`` merged) copies, and so does an append to an older state
whose end is no longer the list's.

Alongside the entries the shared storage keeps their base offsets (for the
bisect that finds the entry holding an offset) and running byte totals, so
neither is rebuilt per commit.
"""

import bisect
import threading
from array import array
from collections.abc import Sequence


class _Shared:
    """The lists several Manifest windows share, and the lock that keeps two
    threads from both extending them from the same end."""

    __slots__ = ("refs", "bases", "totals", "lock")

    def __init__(self, refs):
        self.refs = list(refs)
        # Arrays of machine integers: 8 bytes an entry, not an int object.
        self.bases = array("q", [ref.base_offset for ref in self.refs])
        totals = array("q", [0])
        total = 0
        for ref in self.refs:
            total += ref.size
            totals.append(total)
        self.totals = totals
        self.lock = threading.Lock()


class Manifest(Sequence):
    """The committed SegmentRefs of a partition, oldest first. Compares equal
    to any sequence (a tuple, say) holding the same entries."""

    __slots__ = ("_shared", "_start", "_end")

    def __init__(self, refs=()):
        self._shared = _Shared(refs)
        self._start = 0
        self._end = len(self._shared.refs)

    @classmethod
    def _window(cls, shared, start, end):
        manifest = cls.__new__(cls)
        manifest._shared = shared
        manifest._start = start
        manifest._end = end
        return manifest

    @classmethod
    def of(cls, refs):
        """``refs`` as a Manifest (itself if it is one)."""
        return refs if isinstance(refs, cls) else cls(refs)

    # Sequence

    def __len__(self):
        return self._end - self._start

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return tuple(self)[index]
            return self._window(self._shared, self._start + start, self._start + max(start, stop))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("manifest index out of range")
        return self._shared.refs[self._start + index]

    def __iter__(self):
        refs = self._shared.refs
        for position in range(self._start, self._end):
            yield refs[position]

    def __reversed__(self):
        refs = self._shared.refs
        for position in range(self._end - 1, self._start - 1, -1):
            yield refs[position]

    def __eq__(self, other):
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __add__(self, other):
        return (*self, *other)

    def __radd__(self, other):
        return (*other, *self)

    def __hash__(self):
        return hash(tuple(self))

    def __repr__(self):
        return f"Manifest({list(self)!r})"

    # Queries in O(log n) or O(1)

    @property
    def size(self):
        """Bytes of every entry together."""
        return self._shared.totals[self._end] - self._shared.totals[self._start]

    def find(self, offset):
        """The index of the entry whose base offset is the largest at or
        below ``offset`` (0 below the first entry); -1 when empty."""
        if self._start == self._end:
            return -1
        position = bisect.bisect_right(self._shared.bases, offset, self._start, self._end) - 1
        return max(position, self._start) - self._start

    def below(self, offset):
        """How many leading entries end below ``offset``."""
        position = self.find(offset)
        if position < 0:
            return 0
        return position + 1 if self[position].last_offset < offset else position

    def position_of(self, ref):
        """The index of ``ref`` (matched whole, not by identity), or -1."""
        position = self.find(ref.base_offset)
        if position >= 0 and self[position] == ref:
            return position
        return -1

    # New manifests

    def appended(self, ref):
        """This manifest with ``ref`` after its last entry: O(1) amortized."""
        shared = self._shared
        with shared.lock:
            if self._end == len(shared.refs):
                shared.refs.append(ref)
                shared.bases.append(ref.base_offset)
                shared.totals.append(shared.totals[-1] + ref.size)
                return self._window(shared, self._start, self._end + 1)
        return Manifest((*self, ref))

    def dropped(self, count):
        """This manifest without its first ``count`` entries: O(1), copying
        now and then so that dropped entries do not stay alive for ever."""
        start = self._start + count
        if start > 1024 and start * 2 > len(self._shared.refs):
            return Manifest(self._shared.refs[start:self._end])
        return self._window(self._shared, start, self._end)

    def replaced(self, first, stop, refs):
        """This manifest with the entries ``[first, stop)`` replaced by
        ``refs``: a copy."""
        entries = self._shared.refs
        return Manifest((*entries[self._start:self._start + first], *refs,
                         *entries[self._start + stop:self._end]))
