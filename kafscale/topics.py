"""The topics a broker knows, and the one place they are created, grown,
reconfigured and deleted.

Every change is validated here (whoever asks: CreateTopics, CreatePartitions,
the config APIs, auto-creation) and refused with a domain error: the handlers
turn those into Kafka error codes. A write takes up what the store answers
for its topic alone, and the subscribers (the broker's reconciliation) run
for that topic before the write returns, so the partitions change hands
before the client is answered; a change by anyone else re-reads them all.
"""

import inspect
from collections.abc import Mapping

from twisted.internet.defer import Deferred

from kafscale.coalescing import Coalescing
from kafscale.log import logger
from kafscale.metadata import topic_configs
from kafscale.metadata.interfaces import InvalidPartitions, TopicExists, UnknownTopic
from kafscale.storage.segment import topic_prefix

log = logger("kafscale.topics")


class TopicRefused(Exception):
    """Base of the refusals of a topic change that are not the metadata
    store's (whose refusals are `MetadataError` subclasses)."""


class InvalidReplicationFactor(TopicRefused):
    """A replication factor Kafka refuses too (0, or below -1)."""


class ReplicaAssignmentRefused(TopicRefused):
    """A replica assignment Kafka refuses too: unknown brokers, a broker
    twice in one partition, partitions of unequal replica counts."""


class InvalidTopicRequest(TopicRefused):
    """A request asking for a topic two contradicting ways (an assignment
    and a partition count, say)."""


class PartitionLimit(TopicRefused):
    """The change would take the cluster past the partitions it may hold."""


class TopicNotReady(TopicRefused):
    """Created by another broker or request, but not loaded here yet."""


DEFAULT_REPLICATION_FACTOR = 1
"""What a topic created with replication factor -1 gets: Kafka's
default.replication.factor."""

MAX_REPLICATION_FACTOR = 2**15 - 1
"""The largest the protocol's int16 can say."""


def _check_assignments(assignments, live_brokers):
    """Refuse an assignment Kafka refuses. -> its replication factor."""
    sizes = {len(replicas) for replicas in assignments}
    if len(sizes) != 1:
        raise ReplicaAssignmentRefused("every partition must have as many replicas as the others")
    (size,) = sizes
    if size == 0:
        raise ReplicaAssignmentRefused("a partition's replica list is empty")
    for index, replicas in enumerate(assignments):
        if len(set(replicas)) != len(replicas):
            raise ReplicaAssignmentRefused(f"partition {index} names a broker more than once: {replicas}")
        unknown = sorted(set(replicas) - set(live_brokers))
        if unknown:
            raise ReplicaAssignmentRefused(f"partition {index} names brokers that are not live: {unknown}")
    return size


class Topics(Mapping):
    """A read-only mapping of topic name to TopicInfo, as the metadata store
    last said, with the changes that go through it.

    ``metadata`` is the IMetadataStore, ``objects`` the IObjectStore and
    ``cache`` the SegmentCache whose entries a deleted topic's objects leave;
    ``default_partitions`` is what a topic created with -1 partitions (or
    automatically) gets; a topic may have at most ``max_partitions_per_topic``
    partitions, and all topics together at most ``max_partitions`` (None:
    no limit).
    """

    def __init__(self, metadata, objects, cache, default_partitions, max_partitions_per_topic=None,
                 max_partitions=None):
        self._metadata = metadata
        self._objects = objects
        self._cache = cache
        self.default_partitions = default_partitions
        self.max_partitions_per_topic = max_partitions_per_topic
        self.max_partitions = max_partitions
        self._topics = {}
        # Topics this broker wrote while a refresh was reading the store,
        # which what the refresh read may predate.
        self._written_meanwhile = None
        self._scope = set()
        self._subscribers = []
        self._unsubscribe = None
        self._refresh = Coalescing(self._refresh_once, "topic refresh")

    # -- the mapping

    def __getitem__(self, name):
        return self._topics[name]

    def __iter__(self):
        return iter(self._topics)

    def __len__(self):
        return len(self._topics)

    def by_id(self, topic_id):
        """The TopicInfo with this topic id, or None."""
        return next((info for info in self._topics.values() if info.topic_id == topic_id), None)

    def require(self, name):
        """The TopicInfo named ``name``. Raises UnknownTopic."""
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopic(f"no topic {name!r}")
        return info

    # -- following the store

    async def load(self):
        """Read the topics and follow the store's changes from then on.
        Raises MetadataError: a broker that cannot read its topics must not
        start serving (a later refresh that fails is only logged)."""
        if self._unsubscribe is None:
            self._unsubscribe = self._metadata.subscribe(self._store_changed)
        self._topics = await self._metadata.topics()

    async def stop(self):
        """Follow the store no more; return once a refresh under way ended."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._refresh.stop()

    def subscribe(self, callback):
        """Call ``callback(names)`` after every change: ``names`` the set of
        topics that changed, or None when any may have. Waits for its
        result if it returns an awaitable. -> a callable that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _store_changed(self, areas):
        if "topics" in areas:
            self.refresh()

    def refresh(self):
        """Re-read the topics, then run the subscribers. Concurrent calls
        coalesce. -> a Deferred that fires once a refresh begun after this
        call has ended (a failed one is logged; the next change or call tries
        again)."""
        self._scope = None
        return self._refresh.run()

    def _changed(self, name, info):
        """Take up what a write of ``name`` left (``info``, None once
        deleted), then run the subscribers for it, coalescing with any
        refresh. -> a Deferred as `refresh` gives."""
        if info is None:
            self._topics.pop(name, None)
        else:
            self._topics[name] = info
        if self._written_meanwhile is not None:
            self._written_meanwhile[name] = info
        if self._scope is not None:
            self._scope.add(name)
        return self._refresh.run()

    async def _refresh_once(self):
        scope, self._scope = self._scope, set()
        if scope is None:
            self._written_meanwhile = {}
            try:
                topics = await self._metadata.topics()
            finally:
                written, self._written_meanwhile = self._written_meanwhile, None
            for name, info in written.items():
                if info is None:
                    topics.pop(name, None)
                else:
                    topics[name] = info
            self._topics = topics
        for callback in list(self._subscribers):
            result = callback(scope)
            if inspect.isawaitable(result):
                await result

    # -- changes

    async def create(self, name, partitions, configs, *, replication_factor=-1, assignments=None,
                     live_brokers=frozenset(), validate_only=False):
        """Create a topic of ``partitions`` partitions (-1: the default)
        with the given configs, unless ``validate_only``. -> its TopicInfo,
        or None when only validating.

        The replication factor (-1: 1, Kafka's default.replication.factor)
        is kept and reported back; the object store replicates every
        partition, whatever the number. ``assignments``, a list of replica
        lists by partition, gives the partition count and replication
        factor instead (both must then be -1); placement stays the
        brokers' (the owner of a partition is never chosen by it), but
        every broker it names must be among ``live_brokers``, as in Kafka.

        Raises InvalidReplicationFactor, ReplicaAssignmentRefused,
        InvalidTopicRequest, InvalidTopicName, InvalidPartitions (fewer
        than one, or more than a topic may have), PartitionLimit,
        InvalidConfig, TopicExists, MetadataError."""
        topic_configs.check_topic_name(name)
        if assignments:
            if partitions != -1 or replication_factor != -1:
                raise InvalidTopicRequest("with a replica assignment, the partition count and the replication"
                                          " factor must be -1")
            partitions = len(assignments)
            replication_factor = _check_assignments(assignments, live_brokers)
        if replication_factor == -1:
            replication_factor = DEFAULT_REPLICATION_FACTOR
        if not 1 <= replication_factor <= MAX_REPLICATION_FACTOR:
            raise InvalidReplicationFactor(f"replication factor {replication_factor}: it must be at least 1")
        if partitions == -1:
            partitions = self.default_partitions
        if partitions < 1:
            raise InvalidPartitions(f"{partitions} partitions: at least 1 is needed")
        self._check_limits(partitions, partitions)
        topic_configs.validate(configs)
        if name in self._topics:
            raise TopicExists(f"topic {name!r} already exists")
        if validate_only:
            return None
        return await self._write(name, self._metadata.create_topic(name, partitions, configs, replication_factor))

    async def create_automatically(self, name):
        """Create a topic a client named but no one created, with the
        default partitions and configs; one created meanwhile elsewhere will
        do. -> its TopicInfo. Raises as `create`, or TopicNotReady."""
        try:
            return await self.create(name, self.default_partitions, {})
        except TopicExists:
            pass
        await self.refresh()
        info = self._topics.get(name)
        if info is None:
            raise TopicNotReady(f"topic {name!r} is not loaded yet")
        return info

    async def add_partitions(self, name, total, *, assignments=None, live_brokers=frozenset(),
                             validate_only=False):
        """Grow a topic to ``total`` partitions, unless ``validate_only``;
        ``assignments`` (replica lists for the new partitions) are checked
        as `create` checks them, and must name one list per new partition.
        Raises UnknownTopic, ReplicaAssignmentRefused, InvalidPartitions
        (not a growth, or past what a topic may have), PartitionLimit,
        MetadataError."""
        info = self.require(name)
        if total <= info.partitions:
            raise InvalidPartitions(f"topic {name!r} has {info.partitions} partitions: it can grow, not go to {total}")
        if assignments:
            if len(assignments) != total - info.partitions:
                raise ReplicaAssignmentRefused(f"{len(assignments)} replica lists for"
                                               f" {total - info.partitions} new partitions")
            _check_assignments(assignments, live_brokers)
        self._check_limits(total, total - info.partitions)
        if validate_only:
            return None
        return await self._write(name, self._metadata.add_partitions(name, total))

    def _check_limits(self, topic_partitions, added):
        """Refuse a topic of ``topic_partitions`` partitions, ``added`` of
        them new, past the limits."""
        if self.max_partitions_per_topic is not None and topic_partitions > self.max_partitions_per_topic:
            raise InvalidPartitions(f"{topic_partitions} partitions: a topic may have at most"
                                    f" {self.max_partitions_per_topic}")
        if self.max_partitions is not None:
            held = sum(info.partitions for info in self._topics.values())
            if held + added > self.max_partitions:
                raise PartitionLimit(f"{added} more partitions would make {held + added}: the cluster may hold"
                                     f" at most {self.max_partitions}")

    async def alter_configs(self, name, updates, deletions, *, validate_only=False):
        """Set ``updates`` and remove ``deletions`` from a topic's configs in
        one store write, unless ``validate_only``. Raises UnknownTopic,
        InvalidConfig, MetadataError."""
        current = self.require(name).configs
        topic_configs.validate(updates)
        # Settings checked together (the compaction lags) as they will be.
        topic_configs.validate(topic_configs.with_changes(current, updates, deletions))
        if validate_only:
            return None
        return await self._write(name, self._metadata.alter_topic_configs(name, updates, deletions))

    async def delete(self, name):
        """Delete a topic; its objects are removed in the background.
        -> the deleted TopicInfo. Raises UnknownTopic, MetadataError."""
        info = await self._write(name, self._metadata.delete_topic(name), deleted=True)
        Deferred.fromCoroutine(self._delete_objects(info)).addErrback(
            lambda failure: log.failure("deleting the objects of topic {topic} failed", failure, topic=name)
        )
        return info

    async def _write(self, name, write, deleted=False):
        """Await a store write to topic ``name`` (a Deferred giving its
        TopicInfo), naming the topic in what the store refuses, then take it
        up."""
        try:
            result = await write
        except TopicExists:
            raise TopicExists(f"topic {name!r} already exists") from None
        except UnknownTopic:
            raise UnknownTopic(f"no topic {name!r}") from None
        await self._changed(name, None if deleted else result)
        return result

    async def _delete_objects(self, info):
        for item in await self._objects.list(topic_prefix(info.name, info.topic_id)):
            await self._objects.delete(item.key)
            self._cache.discard_object(item.key)
