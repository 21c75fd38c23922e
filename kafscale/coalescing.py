"""Running an async function on demand, one run at a time."""

from twisted.internet.defer import Deferred

from kafscale.log import logger

log = logger("kafscale.coalescing")


class Coalescing:
    """Runs an async function on demand, one run at a time: demands made
    during a run are served by one more run after it."""

    def __init__(self, function, name):
        self._function = function
        self._name = name
        self._running = False
        self._loop_ended = None
        self._waiting = []
        self._stopped = False

    def run(self):
        """-> a Deferred that fires (with None) once a run begun after this
        call has ended; a failed run is logged."""
        done = Deferred()
        if self._stopped:
            done.callback(None)
            return done
        self._waiting.append(done)
        if not self._running:
            self._running = True
            self._loop_ended = Deferred.fromCoroutine(self._loop())
        return done

    async def stop(self):
        """Run no more; return once the current run (if any) has ended."""
        self._stopped = True
        if self._running:
            await self._loop_ended

    async def _loop(self):
        try:
            while self._waiting:
                waiters, self._waiting = self._waiting, []
                if not self._stopped:
                    try:
                        await self._function()
                    except Exception:
                        log.failure("{name} failed", name=self._name)
                for waiter in waiters:
                    waiter.callback(None)
        finally:
            self._running = False
