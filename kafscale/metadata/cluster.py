"""Who owns which partition, for a broker alone on its metadata store; and
the coalescing of repeated demands that the broker and the etcd cluster view
(kafscale.etcd.cluster) share."""

from twisted.internet.defer import Deferred

from kafscale.log import logger
from kafscale.metadata.interfaces import Fenced, MetadataUnavailable

log = logger("kafscale.metadata.cluster")


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


class SoleOwner:
    """Ownership for a broker alone on its metadata store (the embedded
    default): it is the assignee of every partition and always healthy, and
    taking a partition is a claim, a new leader epoch, with nothing to
    release. It answers what the broker's reconciliation asks a Cluster."""

    def __init__(self, store, node_id):
        self.store = store
        self.node_id = node_id

    def healthy(self):
        return True

    def assignee(self, topic, partition):
        return self.node_id

    def holds(self, topic, partition):
        return True

    def taken_by_another(self, topic, partition):
        return False

    def free(self, topic, partition):
        return True

    async def acquire(self, topic, partition):
        """Claim the partition at the next leader epoch. -> its PartitionState.
        Raises UnknownTopic, MetadataError (another writer kept winning)."""
        for _ in range(3):
            state = await self.store.partition_state(topic, partition)
            try:
                return await self.store.claim_partition(topic, partition, state.leader_epoch)
            except Fenced:
                continue
        raise MetadataUnavailable(f"{topic}-{partition}: the claim kept losing to another writer")

    async def release(self, topic, partition):
        """Nothing holds the partition but the broker's own log."""
