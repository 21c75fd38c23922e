"""Producer ids for idempotent producers, unique across a cluster and its
restarts without a write to the metadata store.

An id is laid out like a Snowflake id, in 63 bits (ids are non-negative
int64)::

    milliseconds since ID_EPOCH (41 bits) | node id (13 bits) | counter (9 bits)

so brokers with different node ids (modulo 8192, room for the ids a
cluster allocates from 1001 up) never collide, and one
broker never repeats itself: its milliseconds never go backwards. When the
clock stands still or steps back, the last millisecond is kept and the
counter advances; when the counter wraps, the generator moves on to the next
millisecond at once instead of waiting for the clock (it never blocks), and
the clock catches up within a few milliseconds however many ids are drawn.

Across a restart the ids stay unique as long as the wall clock did not go
back by more than the time the broker was down. The 41 bits of milliseconds
last until 2093.
"""

import time

ID_EPOCH_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z."""

NODE_BITS = 13
COUNTER_BITS = 9
MILLISECOND_BITS = 63 - NODE_BITS - COUNTER_BITS
_NODE_MASK = (1 << NODE_BITS) - 1
_COUNTER_MASK = (1 << COUNTER_BITS) - 1
_LAST_MILLISECOND = (1 << MILLISECOND_BITS) - 1


class ProducerIdGenerator:
    """Hands out producer ids; ``clock`` gives the wall-clock time in seconds."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._millisecond = -1
        self._counter = 0

    def next_id(self, node_id):
        """A new producer id: one no call before gave, and greater than every
        id given before for the same ``node_id``."""
        now = int(self.clock() * 1000) - ID_EPOCH_MS
        if now > self._millisecond:
            self._millisecond = now
            self._counter = 0
        else:
            self._counter = (self._counter + 1) & _COUNTER_MASK
            if self._counter == 0:
                self._millisecond += 1
        if not 0 <= self._millisecond <= _LAST_MILLISECOND:
            raise OverflowError(f"the clock reads {now} ms from the producer id epoch, outside the id's range")
        return (self._millisecond << (NODE_BITS + COUNTER_BITS)) | ((node_id & _NODE_MASK) << COUNTER_BITS) | self._counter
