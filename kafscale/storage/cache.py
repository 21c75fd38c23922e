"""A byte-bounded LRU of verified segments: the tail of every partition is
served from memory after its flush, and catch-up reads are served from whole
segments fetched once.

Entries are keyed by (object key, position): a segment is its object whole
(position 0) or one partition's slice of a multi-partition object. A flush
puts every slice of the object it wrote, each a view into the one buffer,
so the fresh object costs one PUT and no GET to every partition reading it.
A method taking ``ref`` takes anything with ``key`` and ``position`` (a
SegmentRef, a Segment)."""

from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure


class SegmentCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.size = 0
        self._segments = OrderedDict()
        self._positions = {}  # object key -> the positions cached from it
        self._loading = {}
        # Reads through `load`, for metrics: served from memory, or fetched.
        self.hits = self.misses = 0
        self.hit_bytes = self.miss_bytes = 0

    def __contains__(self, ref):
        return (ref.key, ref.position) in self._segments

    def get(self, ref):
        return self._get((ref.key, ref.position))

    def _get(self, key):
        segment = self._segments.get(key)
        if segment is not None:
            self._segments.move_to_end(key)
        return segment

    def put(self, segment):
        if segment.size > self.max_bytes:
            return
        self._remove((segment.key, segment.position))
        self._segments[segment.key, segment.position] = segment
        self._positions.setdefault(segment.key, set()).add(segment.position)
        self.size += segment.size
        while self.size > self.max_bytes:
            self._remove(next(iter(self._segments)))

    def _remove(self, key):
        segment = self._segments.pop(key, None)
        if segment is None:
            return
        self.size -= segment.size
        positions = self._positions[key[0]]
        positions.discard(key[1])
        if not positions:
            del self._positions[key[0]]

    def discard(self, ref):
        self._remove((ref.key, ref.position))

    def discard_object(self, object_key):
        """Drop every segment cached from the object at ``object_key``."""
        for position in list(self._positions.get(object_key, ())):
            self._remove((object_key, position))

    def load(self, ref, fetch):
        """The cached segment for ``ref``, or ``fetch()`` (a coroutine
        function giving a Segment) run once however many readers miss at the
        same time. Returns a Deferred."""
        key = (ref.key, ref.position)
        segment = self._get(key)
        if segment is not None:
            self.hits += 1
            self.hit_bytes += segment.size
            return succeed(segment)
        waiters = self._loading.get(key)
        if waiters is None:
            self.misses += 1
            waiters = self._loading[key] = []
            Deferred.fromCoroutine(fetch()).addBoth(self._loaded, key)
        waiter = Deferred()
        waiters.append(waiter)
        return waiter

    def _loaded(self, result, key):
        waiters = self._loading.pop(key)
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return None
        self.miss_bytes += result.size
        self.put(result)
        for waiter in waiters:
            waiter.callback(result)
        return None
