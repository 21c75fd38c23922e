"""A lease kept alive: what makes a process's keys vanish when it dies."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater

from kafscale.etcd.client import EtcdClient, EtcdError, EtcdUnavailable, Lease, LeaseNotFound
from kafscale.log import logger

log = logger("kafscale.etcd.lease")


# A renewal that fails is tried again this soon, not a renewal interval
# later: one slow or lost keepalive must not cost the lease.
RETRY_DELAY = 0.1


class LeaseKeeper:
    """Grants a lease and keeps it alive, renewing every third of its TTL.
    A keepalive that gets no answer within a sixth of the TTL (or before the
    deadline) is abandoned and tried again at once, on a new connection.

    ``deadline`` is when the lease may expire as far as this process can know:
    the time the last successful renewal was sent plus the TTL. An owner that
    must not act on an expired lease (a broker acknowledging writes) checks
    ``alive()`` first. ``on_lost(error)`` is called once, when etcd says the
    lease is gone (LeaseNotFound) or when the deadline passes without a
    renewal (EtcdUnavailable); the keeper then stops. A lost lease is never
    renewed again: start a new keeper.
    """

    def __init__(self, client: EtcdClient, ttl: int, on_lost: Callable[[EtcdError], object],
                 *, clock: IReactorTime | None = None):
        self._client = client
        self._requested_ttl = ttl
        self._on_lost = on_lost
        self._clock = clock if clock is not None else client._reactor
        self.lease: Lease | None = None
        self.deadline = 0.0
        self.lost = False
        self._running = False
        self._expiry: IDelayedCall | None = None
        self._renewing: Deferred[None] | None = None

    @property
    def lease_id(self) -> int:
        return self.lease.id

    def alive(self) -> bool:
        """Whether the lease is certainly still held."""
        return self._running and self._clock.seconds() < self.deadline

    async def start(self) -> Lease:
        sent = self._clock.seconds()
        self.lease = await self._client.lease_grant(self._requested_ttl)
        self.deadline = sent + self.lease.ttl
        self._running = True
        self._expiry = self._clock.callLater(self.deadline - self._clock.seconds(),
                                             self._deadline_passed)
        self._renewing = Deferred.fromCoroutine(self._renew_forever())
        self._renewing.addErrback(self._renewal_ended)
        return self.lease

    def _renewal_ended(self, failure):
        # Cancelled by stop() or the deadline; anything else is a bug, and
        # the deadline still declares the lease lost in time.
        if not failure.check(CancelledError):
            log.failure("renewing lease {lease:x} stopped", failure, lease=self.lease.id)

    async def stop(self) -> None:
        """Stop renewing and revoke the lease, which deletes its keys."""
        if not self._running:
            return
        self._running = False
        self._expiry.cancel()
        self._renewing.cancel()
        try:
            await self._client.lease_revoke(self.lease.id)
        except LeaseNotFound:
            pass

    async def _renew_forever(self) -> None:
        interval = self.lease.ttl / 3
        wait = interval
        while True:
            await deferLater(self._clock, wait)
            sent = self._clock.seconds()
            timeout = max(min(self.lease.ttl / 6, self.deadline - sent), RETRY_DELAY)
            try:
                ttl = await self._client.lease_keepalive(self.lease.id, timeout=timeout)
            except LeaseNotFound as error:
                self._expiry.cancel()
                self._lose(error)
                return
            except EtcdError as error:
                log.warn("could not renew lease {lease:x}: {error}", lease=self.lease.id,
                         error=error)
                wait = RETRY_DELAY
                continue
            wait = interval
            self.deadline = sent + ttl
            self._expiry.reset(self.deadline - self._clock.seconds())

    def _deadline_passed(self) -> None:
        self._renewing.cancel()
        self._lose(EtcdUnavailable(f"lease {self.lease.id:x} not renewed before its TTL ran out"))

    def _lose(self, error: EtcdError) -> None:
        self._running = False
        self.lost = True
        log.warn("lost lease {lease:x}: {error}", lease=self.lease.id, error=error)
        self._on_lost(error)
