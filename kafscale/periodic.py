"""A service that does one pass of work every so often: retention, the
collection of unneeded objects."""

from twisted.application.service import Service
from twisted.internet.defer import DeferredLock
from twisted.internet.task import LoopingCall

from kafscale.log import logger

log = logger("kafscale.periodic")


class PeriodicService(Service):
    """Awaits ``self.run_pass()`` every ``interval`` seconds of ``clock``
    (an IReactorTime), the first an interval after starting. Passes never
    overlap; stopping waits for the one running. A pass that fails is
    logged, and the next one still comes."""

    def __init__(self, interval, clock):
        self.interval = interval
        self.clock = clock
        self._loop = None
        self._lock = DeferredLock()

    async def run_pass(self):
        raise NotImplementedError

    def startService(self):
        super().startService()
        self._loop = LoopingCall(self._lock.run, self._pass)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self._lock.acquire().addCallback(lambda lock: lock.release())

    async def _pass(self):
        # A LoopingCall whose call fails never runs again.
        try:
            await self.run_pass()
        except Exception:
            log.failure("{name} pass failed; the next runs in {interval}s", name=self.name, interval=self.interval)
