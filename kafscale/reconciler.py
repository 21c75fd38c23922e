"""Reconciliation: the partitions a broker serves follow its cluster view.

A broker serves the partitions the view assigns it once it has acquired
them: it takes them when they are free, hands them over (flush, then
release) when the assignment moves them or their topic goes, keeps serving
reads but takes no partitions while the view is unhealthy (its logs refuse
appends meanwhile), and lets go at once of a partition another broker took.
Every change of the topics or of the view, and every deposed log, sets a
reconciliation going; concurrent demands coalesce. A change of some topics
reconciles only their partitions, and partitions change hands a bounded
number at a time, so that a large topic does not hold up the reactor.
"""

from twisted.internet.defer import Deferred, gatherResults

from kafscale.coalescing import Coalescing
from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError, OwnedElsewhere, UnknownTopic

log = logger("kafscale.reconciler")


class Reconciler:
    """Keeps ``logs`` (the broker's PartitionLogs) in line with ``topics``
    (its Topics) and ``view`` (its IClusterView)."""

    def __init__(self, topics, logs, view):
        self._topics = topics
        self._logs = logs
        self._view = view
        self._runs = Coalescing(self._reconcile, "partition reconciliation")
        # The topics the next run reconciles; None: all of them.
        self._scope = set()
        self._unsubscribe = []

    def start(self):
        """Follow the topics, the view and deposed logs. -> a Deferred
        firing once a first reconciliation has ended."""
        self._unsubscribe = [
            self._topics.subscribe(self.run),
            self._view.subscribe(self.run),
            self._logs.subscribe_deposed(lambda partition_log: self.run()),
        ]
        return self.run()

    def run(self, names=None):
        """Reconcile the partitions of the topics ``names`` (None: of every
        topic). -> a Deferred that fires once a reconciliation begun after
        this call has ended (a failed one is logged)."""
        if names is None:
            self._scope = None
        elif self._scope is not None:
            self._scope.update(names)
        return self._runs.run()

    async def stop(self):
        """Reconcile no more; return once a reconciliation under way ended."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self._runs.stop()

    async def hand_over_all(self):
        """Hand over every partition, each flushed before it is released:
        what was accepted is committed, then the partitions are free."""
        await _all(self._hand_over(partition_log) for partition_log in self._logs.pop_all())

    async def _reconcile(self):
        """First let go of what must go (so that a topic deleted and created
        again is released before it is taken), then take what is ours."""
        scope, self._scope = self._scope, set()
        view, node_id = self._view, self._view.node_id
        healthy = view.healthy()
        leaving = []
        for (name, partition), partition_log in list(self._logs.items()):
            if scope is not None and name not in scope:
                continue
            info = self._topics.get(name)
            gone = info is None or info.topic_id != partition_log.topic_id or partition >= info.partitions
            if gone or view.taken_by_another(name, partition) or (
                    healthy and view.assignee(name, partition) != node_id):
                self._logs.pop((name, partition))
                leaving.append(partition_log)
        await _in_turns(self._hand_over, leaving)
        if not healthy:
            # The logs stay, serving reads; they refuse appends meanwhile.
            return
        taking = []
        if scope is None:
            reconciled = list(self._topics.values())
        else:
            reconciled = [self._topics[name] for name in scope if name in self._topics]
        for info in reconciled:
            settings = self._logs.settings(info)
            for partition in range(info.partitions):
                existing = self._logs.get((info.name, partition))
                if existing is not None and view.holds(info.name, partition):
                    existing.configure(settings)
                elif view.assignee(info.name, partition) == node_id and view.free(info.name, partition):
                    taking.append((info, partition))
        await _in_turns(lambda taken: self._take(*taken), taking)

    async def _take(self, info, partition):
        stale = self._logs.pop((info.name, partition))
        if stale is not None:
            # Held under a lease since lost: commit what it has first.
            await stale.close()
        try:
            state = await self._view.acquire(info.name, partition)
        except (OwnedElsewhere, UnknownTopic) as error:
            log.debug("not taking {topic}-{partition}: {error}", topic=info.name, partition=partition, error=error)
            return
        except MetadataError as error:
            log.warn("could not take {topic}-{partition}: {error}", topic=info.name, partition=partition, error=error)
            return
        self._logs.open(info, state)
        log.info("took {topic}-{partition} at leader epoch {epoch}, next offset {offset}",
                 topic=info.name, partition=partition, epoch=state.leader_epoch, offset=state.next_offset)

    async def _hand_over(self, partition_log):
        """Flush (refusing appends from then on), then free the partition."""
        await partition_log.close()
        try:
            await self._view.release(partition_log.topic, partition_log.partition)
        except MetadataError as error:
            # Its owner key goes with our lease, then.
            log.warn("could not release {topic}-{partition}: {error}", topic=partition_log.topic,
                     partition=partition_log.partition, error=error)


# Partitions taken or handed over at once: each turn's work runs on the
# reactor between the store's answers, so a turn is bounded, not the total.
PARTITIONS_PER_TURN = 256


async def _in_turns(change, items):
    """``await change(item)`` for each of ``items``, concurrently up to
    PARTITIONS_PER_TURN at a time (failures are logged, not raised)."""
    for start in range(0, len(items), PARTITIONS_PER_TURN):
        await _all(change(item) for item in items[start:start + PARTITIONS_PER_TURN])


def _all(coroutines):
    """Run coroutines concurrently; -> a Deferred firing when all have ended
    (failures are logged, not raised)."""
    def logged(failure):
        log.failure("partition change failed", failure)

    return gatherResults([Deferred.fromCoroutine(c).addErrback(logged) for c in coroutines])
