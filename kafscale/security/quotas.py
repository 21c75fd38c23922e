"""Client quotas as Kafka applies them: produce and fetch byte rates and a
request rate, per user and/or client id, measured over a sliding window and
enforced by throttling.

Quotas are set on entities: a user, a client id, or a user with a client id,
each possibly the default one (name None). A connection's quota for a key is
the most specific that matches it, in Kafka's order (user and client id,
user and default client, user, default user and client id, default user
and default client, default user, client id, default client). Usage is
counted per matching entity with the defaults filled in: a user's quota is
shared by all its clients, a default user quota applies to each user alone.

Keys: Kafka's ``producer_byte_rate`` and ``consumer_byte_rate`` (bytes per
second), and ``request_rate`` (requests per second), which stands in for
Kafka's ``request_percentage``: a share of request handler threads means
nothing on one reactor thread.
"""

from collections import deque
from dataclasses import dataclass

from kafscale.metadata.following import FollowingService

PRODUCE = "producer_byte_rate"
FETCH = "consumer_byte_rate"
REQUESTS = "request_rate"
KEYS = (PRODUCE, FETCH, REQUESTS)

USER = "user"
CLIENT_ID = "client-id"
ENTITY_TYPES = (USER, CLIENT_ID)


class InvalidQuota(ValueError):
    """An entity or quota that cannot be stored."""


def checked_entity(pairs):
    """The entity of ``pairs`` ((type, name or None) from AlterClientQuotas),
    or InvalidQuota."""
    types = [kind for kind, _ in pairs]
    if not types:
        raise InvalidQuota("an entity names a user, a client id or both")
    if len(set(types)) != len(types):
        raise InvalidQuota("an entity names each type once")
    for kind in types:
        if kind not in ENTITY_TYPES:
            raise InvalidQuota(f"entity type {kind!r} is not supported: only user and client-id")
    return tuple(sorted(pairs))


def checked_key(key):
    if key not in KEYS:
        raise InvalidQuota(f"unknown quota {key!r}: Kafscale enforces {', '.join(KEYS)}")
    return key


def checked_value(key, value):
    checked_key(key)
    if not value > 0:
        raise InvalidQuota(f"quota {key} must be positive, not {value}")
    return float(value)


class _Rate:
    """Kafka's Rate over ``samples`` windows of ``window`` seconds: the
    amount recorded in the kept windows over the time they span, counted as
    at least all but one whole window (so that a quiet start does not make
    a short burst look fast)."""

    def __init__(self, samples, window):
        self.samples = samples
        self.window = window
        self._windows = deque()  # [start, amount]

    def record(self, now, amount):
        windows = self._windows
        if not windows or now >= windows[-1][0] + self.window:
            windows.append([now, 0.0])
        windows[-1][1] += amount
        while windows[0][0] <= now - self.samples * self.window:
            windows.popleft()

    def measure(self, now):
        windows = self._windows
        if not windows:
            return 0.0
        elapsed = max(now - windows[0][0], (self.samples - 1) * self.window)
        return sum(amount for _, amount in windows) / elapsed

    def idle(self, now):
        return not self._windows or self._windows[-1][0] <= now - self.samples * self.window

    def span(self, now):
        return max(now - self._windows[0][0], (self.samples - 1) * self.window) if self._windows else 0


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    samples: int = 11
    window_seconds: float = 1.0


class ClientQuotas(FollowingService):
    """The quotas of ``metadata`` (an IClientQuotaStore, which reports
    "quotas" changes to its subscribers) and the usage measured against
    them. `record` counts usage and says how long to throttle."""

    area = "quotas"
    what = "client quotas"

    def __init__(self, metadata, settings=QuotaSettings(), clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        super().__init__(metadata)
        self.settings = settings
        self.clock = clock
        self.quotas = {}
        self._rates = {}  # (key, (quota entity, user, client id)) -> _Rate
        self._next_sweep = 0

    def _read(self):
        return self.metadata.client_quotas()

    def _keep(self, quotas):
        self.quotas = quotas

    # IClientQuotaStore, for the broker's AlterClientQuotas: a change made
    # here holds at once, whether or not the store reports its own writes.

    def client_quotas(self):
        return self.metadata.client_quotas()

    async def alter_client_quotas(self, alterations):
        await self.metadata.alter_client_quotas(alterations)
        self.quotas = await self.metadata.client_quotas()

    def quota_for(self, key, user, client_id):
        """-> (the quota of ``key`` for the user and client id, the entity
        it is counted under as (user, client id)); (None, None) without one."""
        for user_name, client_name in ((user, client_id), (user, None), (user, False), (None, client_id),
                                       (None, None), (None, False), (False, client_id), (False, None)):
            # False: the entity has no such type; None: the type's default.
            pairs = []
            if client_name is not False:
                pairs.append((CLIENT_ID, client_name))
            if user_name is not False:
                pairs.append((USER, user_name))
            values = self.quotas.get(tuple(pairs))
            if values and key in values:
                counted_user = user if user_name is not False else None
                counted_client = client_id if client_name is not False else None
                return values[key], (tuple(pairs), counted_user, counted_client)
        return None, None

    def record(self, key, user, client_id, amount):
        """Count ``amount`` of ``key`` for the user and client id. -> how
        many ms to throttle them for, 0 within their quota."""
        if not self.quotas:
            return 0
        quota, counted = self.quota_for(key, user, client_id)
        if quota is None:
            return 0
        settings = self.settings
        now = self.clock.seconds()
        if now >= self._next_sweep:
            # Forget the usage of clients gone quiet for a whole window.
            self._rates = {k: r for k, r in self._rates.items() if not r.idle(now)}
            self._next_sweep = now + settings.samples * settings.window_seconds
        rate = self._rates.get((key, counted))
        if rate is None:
            rate = self._rates[key, counted] = _Rate(settings.samples, settings.window_seconds)
        rate.record(now, amount)
        measured = rate.measure(now)
        if measured <= quota:
            return 0
        # Kafka's throttle: as long as it takes the rate over the window to
        # come back to the quota.
        return int((measured - quota) / quota * rate.span(now) * 1000)
