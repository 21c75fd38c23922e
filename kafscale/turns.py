"""Long loops on the reactor thread, in turns: a pass over every partition a
broker owns (merging, retention, collecting garbage) may meet a hundred
thousand of them, and must not hold every connection up while it does."""

from twisted.internet.task import deferLater

# Items handled between two turns of the reactor: a few milliseconds of work.
ITEMS_PER_TURN = 500


class Turns:
    """Counts the items a loop has handled and lets other work run every
    ``every`` of them: ``await turns.tick()`` once per item."""

    def __init__(self, clock, every=ITEMS_PER_TURN):
        self._clock = clock
        self._every = every
        self._count = 0

    async def tick(self):
        self._count += 1
        if self._count >= self._every:
            self._count = 0
            await deferLater(self._clock, 0)
