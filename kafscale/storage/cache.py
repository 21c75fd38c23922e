"""A byte-bounded LRU of verified segments: the tail of every partition is
served from memory after its flush, and catch-up reads are served from whole
segments fetched once."""

from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure


class SegmentCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.size = 0
        self._segments = OrderedDict()
        self._loading = {}

    def __contains__(self, key):
        return key in self._segments

    def get(self, key):
        segment = self._segments.get(key)
        if segment is not None:
            self._segments.move_to_end(key)
        return segment

    def put(self, segment):
        if segment.size > self.max_bytes:
            return
        old = self._segments.pop(segment.key, None)
        if old is not None:
            self.size -= old.size
        self._segments[segment.key] = segment
        self.size += segment.size
        while self.size > self.max_bytes:
            _, evicted = self._segments.popitem(last=False)
            self.size -= evicted.size

    def discard(self, key):
        segment = self._segments.pop(key, None)
        if segment is not None:
            self.size -= segment.size

    def load(self, key, fetch):
        """The cached segment at ``key``, or ``fetch()`` (a coroutine function
        giving a Segment) run once however many readers miss at the same
        time. Returns a Deferred."""
        segment = self.get(key)
        if segment is not None:
            return succeed(segment)
        waiters = self._loading.get(key)
        if waiters is None:
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
        self.put(result)
        for waiter in waiters:
            waiter.callback(result)
        return None
