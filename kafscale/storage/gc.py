"""Collecting the multi-partition objects nothing needs any more.

A flush writes one object (``~objects/...``) holding a slice of every
partition it carried. Merging, retention and topic deletion drop slices
from the partitions' manifests one partition at a time; none of them can
delete the object, since other partitions may still name it. Left alone,
every flush's object would stay in the bucket for good: storage that
grows with the bytes ever written, not with what is retained.

So one broker (the one the cluster view names controller: the lowest live
node id, the same on every broker) collects them every ``interval_ms``:

1. List ``~objects/``; the candidates are objects older than ``grace_ms``.
   A younger one may belong to a flush that has not committed yet. With
   no candidate the pass ends here: one LIST request.
2. Read every partition's manifest. Listing first means an object
   committed meanwhile is young, so never a candidate.
3. Delete the candidates no manifest names. A reader holding a manifest
   from before a merge replaced a slice meets a missing object and reads
   again from the current manifest (see PartitionLog's reads).

`kafscale-admin segments gc` does the same survey for every kind of
object, for an operator; this service handles the kind only it can.
"""

from dataclasses import dataclass

from twisted.internet.defer import Deferred, DeferredSemaphore, FirstError, gatherResults

from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError, UnknownTopic
from kafscale.periodic import PeriodicService
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.object_format import OBJECTS_PREFIX
from kafscale.turns import Turns

log = logger("kafscale.storage.gc")

# Manifests read, and objects deleted, at once.
CONCURRENT_REQUESTS = 16


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    interval_ms: int = 300_000
    """How often the controller looks for unneeded objects."""
    grace_ms: int = 600_000
    """How old an object must be before it may be deleted: far longer
    than any flush takes from its upload to its commit."""


async def referenced_objects(metadata, clock):
    """-> the keys of the multi-partition objects that some partition's
    manifest names."""
    turns = Turns(clock)
    referenced = set()
    reads = DeferredSemaphore(CONCURRENT_REQUESTS)

    async def read(topic, partition):
        try:
            state = await metadata.partition_state(topic, partition)
        except UnknownTopic:
            return  # deleted since: its slices are no one's
        for ref in state.segments:
            if ref.format == 2:
                referenced.add(ref.key)

    topics = await metadata.topics()
    pending = []
    for info in topics.values():
        for partition in range(info.partitions):
            await turns.tick()
            pending.append(reads.run(lambda t, p: Deferred.fromCoroutine(read(t, p)), info.name, partition))
    await _all(pending)
    return referenced


async def _all(deferreds):
    """Wait for every Deferred; raise the first one's failure as itself."""
    try:
        await gatherResults(deferreds, consumeErrors=True)
    except FirstError as error:
        error.subFailure.raiseException()


class SharedObjectCollector(PeriodicService):
    """Deletes, on the controller only, the multi-partition objects no
    manifest names that are older than the grace period (see the module's
    docstring). ``view`` is the IClusterView, ``clock`` an IReactorTime."""

    name = "shared-object-gc"

    def __init__(self, objects, metadata, view, settings, clock):
        super().__init__(settings.interval_ms / 1000, clock)
        self.objects = objects
        self.metadata = metadata
        self.view = view
        self.settings = settings

    async def run_pass(self):
        if self.view.node_id is None or self.view.controller_id() != self.view.node_id:
            return
        try:
            await self.collect()
        except (ObjectStoreError, MetadataError) as error:
            log.warn("collecting unneeded objects failed, again in {interval}s: {error}",
                     interval=self.interval, error=error)

    async def collect(self):
        """One pass; -> the keys deleted."""
        now_ms = int(self.clock.seconds() * 1000)
        listed = await self.objects.list(OBJECTS_PREFIX)
        candidates = [item.key for item in listed
                      if item.modified_ms is not None and now_ms - item.modified_ms >= self.settings.grace_ms]
        if not candidates:
            return []
        referenced = await referenced_objects(self.metadata, self.clock)
        doomed = [key for key in candidates if key not in referenced]
        deletes = DeferredSemaphore(CONCURRENT_REQUESTS)
        await _all([deletes.run(self.objects.delete, key) for key in doomed])
        if doomed:
            log.info("deleted {count} objects no partition names", count=len(doomed))
        return doomed
