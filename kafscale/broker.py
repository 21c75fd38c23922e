"""The broker's shared state: its identity, the topics it knows, and the
partition logs it owns. Every handler sees it as ``request.broker``."""

import time
from dataclasses import dataclass

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.task import deferLater

from kafscale.coordinator.coordinator import GroupCoordinator
from kafscale.log import logger
from kafscale.metadata import topic_configs
from kafscale.metadata.cluster import Coalescing, SoleOwner
from kafscale.metadata.interfaces import (
    BrokerInfo,
    MetadataError,
    MetadataUnavailable,
    OwnedElsewhere,
    UnknownTopic,
    kafka_error,
)
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.storage.cache import SegmentCache
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from kafscale.storage.retention import RetentionService
from kafscale.storage.segment import topic_prefix

log = logger("kafscale.broker")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int
    rack: str | None


class Broker(MultiService):
    """Owns the metadata and object stores for the broker's lifetime.

    On a single broker (no ``cluster``) it owns every partition: it claims
    each one (a new leader epoch) when it starts or when the topic appears,
    and flushes them all before it stops.

    In a cluster (``cluster`` a kafscale.etcd.cluster.Cluster) it owns
    the partitions the live brokers' assignment gives it, once it holds
    their owner keys: it takes them when they are free, hands them over
    (flush, then release) when the assignment moves them, keeps serving
    reads but refuses writes while its lease is at risk, and lets go at once
    of a partition another broker took. Every change of the cluster's view,
    and a tick of its own, sets this reconciliation going.
    """

    def __init__(self, config, metadata, objects, reactor=None, cluster=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.metadata = metadata
        self.objects = objects
        self.cluster = cluster
        # Who decides which partitions this broker takes: the cluster, or,
        # for a broker alone on its store, a view in which it owns them all.
        self.ownership = cluster if cluster is not None else SoleOwner(metadata, config.node_id)
        self.node_id = config.node_id
        self.cluster_id = config.cluster_id
        self.topics = {}
        self.logs = {}
        self.cache = SegmentCache(config.cache_bytes)
        self.budget = BufferBudget(config.buffer_bytes)
        self._ready = False
        self._opening = None
        self._ready_waiters = []
        self._unsubscribe = None
        self._unsubscribe_cluster = None
        self._topic_refresh = Coalescing(self._refresh_topics_once, "topic refresh")
        self._reconciler = Coalescing(self._reconcile_logs, "partition reconciliation")
        RetentionService(self, config.retention_check_interval_ms / 1000).setServiceParent(self)
        self.groups = GroupCoordinator(self, reactor)
        self.groups.setServiceParent(self)

    # -- lifetime ------------------------------------------------------

    def startService(self):
        self.metadata.startService()
        if self.cluster is not None:
            self.cluster.startService()
        super().startService()
        self._opening = Deferred.fromCoroutine(self._open())
        self._opening.addErrback(self._open_failed)

    def _open_failed(self, failure):
        if not failure.check(CancelledError):
            log.failure("broker failed to start", failure)

    def when_ready(self):
        """A Deferred that fires once the broker has loaded its state and
        claimed its partitions."""
        waiter = Deferred()
        if self._ready:
            waiter.callback(self)
        else:
            self._ready_waiters.append(waiter)
        return waiter

    async def _open(self):
        self._unsubscribe = self.metadata.subscribe(self._store_changed)
        if self.cluster is not None:
            if not await self._join_cluster():
                return
            self._unsubscribe_cluster = self.cluster.subscribe(self._reconciler.run)
        # Not refresh_topics(), which would log a failure and go on: a broker
        # that cannot read its topics must not start serving.
        self.topics = await self.metadata.topics()
        await self._reconciler.run()
        if self.cluster is None:
            await self.metadata.register_broker(BrokerInfo(
                self.node_id, self.config.advertised_host, self.config.advertised_port, self.config.rack,
                int(time.time() * 1000),
            ))
        log.info("broker {node} ready: {topics} topics, {logs} partitions owned",
                 node=self.node_id, topics=len(self.topics), logs=len(self.logs))
        self._ready = True
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(self)

    async def _join_cluster(self):
        """Join, retrying while etcd cannot be reached; -> False if the
        broker was stopped first."""
        delay = 0.1
        while self.running:
            try:
                # The topics first: once registered, others hand partitions over.
                self.topics = await self.metadata.topics()
                self.node_id = await self.cluster.join()
                return True
            except MetadataUnavailable as error:
                log.warn("cannot join the cluster yet: {error}", error=error)
                await deferLater(self.reactor, delay)
                delay = min(2 * delay, 2.0)
        return False

    def stopService(self):
        return Deferred.fromCoroutine(self._close())

    async def _close(self):
        # A broker stopped while still starting (waiting for etcd, say) must
        # not go on to join and claim partitions after it has stopped.
        if self._opening is not None:
            self._opening.cancel()
        for unsubscribe in (self._unsubscribe, self._unsubscribe_cluster):
            if unsubscribe is not None:
                unsubscribe()
        self._unsubscribe = self._unsubscribe_cluster = None
        await self._topic_refresh.stop()
        await self._reconciler.stop()
        if self.cluster is not None and self.cluster.node_id is not None:
            # Out of the assignment first, so that each partition's
            # successor takes it the moment it is released.
            await self.cluster.leave()
        # Flush every partition before the stores go away: what was
        # accepted is committed, then the partitions are free.
        closing = [Deferred.fromCoroutine(self._hand_over(partition_log)) for partition_log in self.logs.values()]
        self.logs.clear()
        await gatherResults(closing)
        await super().stopService()
        if self.cluster is not None:
            await self.cluster.stopService()
        await self.metadata.stopService()
        await self.objects.close()

    # -- topics --------------------------------------------------------

    def topic_by_id(self, topic_id):
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)

    def _store_changed(self, areas):
        if "topics" in areas:
            self.refresh_topics()

    def refresh_topics(self):
        """Re-read the topics, then claim new partitions and let go of the
        ones whose topic is gone. Concurrent calls coalesce. -> a Deferred
        that fires once a refresh begun after this call has ended (a failed
        one is logged; the next change or call tries again)."""
        return self._topic_refresh.run()

    async def _refresh_topics_once(self):
        self.topics = await self.metadata.topics()
        await self._reconciler.run()

    def _log_settings(self, info):
        return LogSettings(
            segment_bytes=topic_configs.effective_int(info.configs, "segment.bytes"),
            flush_linger_ms=self.config.flush_linger_ms,
            max_buffer_bytes=self.config.partition_buffer_bytes,
        )

    def _open_log(self, info, state):
        options = {"topic_id": info.topic_id, "metadata": self.metadata, "objects": self.objects,
                   "cache": self.cache, "budget": self.budget, "settings": self._log_settings(info),
                   "reactor": self.reactor, "on_fenced": self._fenced}
        if self.cluster is not None:
            cluster, name = self.cluster, info.name
            options["holds"] = lambda: cluster.healthy() and cluster.holds(name, state.partition)
        partition_log = PartitionLog(state, **options)
        self.logs[(info.name, state.partition)] = partition_log
        return partition_log

    def _fenced(self, partition_log):
        key = (partition_log.topic, partition_log.partition)
        if self.logs.get(key) is partition_log:
            del self.logs[key]
        log.warn("{topic}-{partition} was claimed by another owner", topic=key[0], partition=key[1])
        self._reconciler.run()

    async def _reconcile_logs(self):
        """Bring the partitions owned here in line with the ownership view
        (the cluster's, or a lone broker's: all of them): first let go of
        what must go (so that a topic deleted and created again is released
        before it is taken), then take what is ours."""
        ownership = self.ownership
        healthy = ownership.healthy()
        leaving = []
        for (name, partition), partition_log in list(self.logs.items()):
            info = self.topics.get(name)
            gone = info is None or info.topic_id != partition_log.topic_id or partition >= info.partitions
            if gone or ownership.taken_by_another(name, partition) or (
                    healthy and ownership.assignee(name, partition) != self.node_id):
                del self.logs[(name, partition)]
                leaving.append(self._hand_over(partition_log))
        await _all(leaving)
        if not healthy:
            # The logs stay, serving reads; they refuse appends meanwhile.
            return
        taking = []
        for info in list(self.topics.values()):
            settings = self._log_settings(info)
            for partition in range(info.partitions):
                existing = self.logs.get((info.name, partition))
                if existing is not None and ownership.holds(info.name, partition):
                    existing.configure(settings)
                elif ownership.assignee(info.name, partition) == self.node_id and ownership.free(info.name, partition):
                    taking.append(self._take(info, partition))
        await _all(taking)

    async def _take(self, info, partition):
        stale = self.logs.pop((info.name, partition), None)
        if stale is not None:
            # Held under a lease since lost: commit what it has first.
            await stale.close()
        try:
            state = await self.ownership.acquire(info.name, partition)
        except (OwnedElsewhere, UnknownTopic) as error:
            log.debug("not taking {topic}-{partition}: {error}", topic=info.name, partition=partition, error=error)
            return
        except MetadataError as error:
            log.warn("could not take {topic}-{partition}: {error}", topic=info.name, partition=partition, error=error)
            return
        self._open_log(info, state)
        log.info("took {topic}-{partition} at leader epoch {epoch}, next offset {offset}",
                 topic=info.name, partition=partition, epoch=state.leader_epoch, offset=state.next_offset)

    async def _hand_over(self, partition_log):
        """Flush (refusing appends from then on), then free the partition."""
        await partition_log.close()
        try:
            await self.ownership.release(partition_log.topic, partition_log.partition)
        except MetadataError as error:
            # Its owner key goes with our lease, then.
            log.warn("could not release {topic}-{partition}: {error}", topic=partition_log.topic,
                     partition=partition_log.partition, error=error)

    async def create_topic(self, name, partitions, configs, validate_only=False):
        """Validate and create a topic, claiming its partitions at once.
        Raises KafkaError with the code CreateTopics should answer."""
        try:
            topic_configs.check_topic_name(name)
        except topic_configs.InvalidTopicName as e:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, str(e)) from None
        if partitions == -1:
            partitions = self.config.num_partitions
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"{partitions} partitions: at least 1 is needed")
        try:
            topic_configs.validate(configs)
        except topic_configs.InvalidConfig as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
        if name in self.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if validate_only:
            return None
        return await self._write_topic(name, self.metadata.create_topic(name, partitions, configs))

    async def auto_create_topic(self, name):
        try:
            return await self.create_topic(name, self.config.num_partitions, {})
        except KafkaError as e:
            if e.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
        # Another request or broker created it meanwhile.
        await self.refresh_topics()
        info = self.topics.get(name)
        if info is None:
            raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"topic {name!r} is not loaded yet")
        return info

    async def delete_topic(self, name):
        """Delete a topic; its objects are removed in the background."""
        info = await self._write_topic(name, self.metadata.delete_topic(name))
        Deferred.fromCoroutine(self._delete_objects(info)).addErrback(
            lambda failure: log.failure("deleting the objects of topic {topic} failed", failure, topic=name)
        )
        return info

    async def alter_topic_configs(self, name, updates, deletions):
        """Change a topic's configs (already validated) in one store write."""
        return await self._write_topic(name, self.metadata.alter_topic_configs(name, updates, deletions))

    async def add_partitions(self, name, total):
        """Grow a topic to ``total`` partitions, claiming the new ones at once."""
        return await self._write_topic(name, self.metadata.add_partitions(name, total))

    async def _write_topic(self, name, write):
        """Await a store write to topic ``name`` (a Deferred), answering a
        refusal with the KafkaError Kafka would give, then take up the new
        topics: the partitions change hands before the caller answers."""
        try:
            result = await write
        except MetadataError as e:
            raise kafka_error(name, e) from None
        await self.refresh_topics()
        return result

    async def _delete_objects(self, info):
        for item in await self.objects.list(topic_prefix(info.name, info.topic_id)):
            await self.objects.delete(item.key)
            self.cache.discard(item.key)

    # -- cluster view --------------------------------------------------

    def live_brokers(self):
        if self.cluster is None:
            config = self.config
            return [BrokerAddress(config.node_id, config.advertised_host, config.advertised_port, config.rack)]
        return [BrokerAddress(b.node_id, b.host, b.port, b.rack) for b in self.cluster.live_brokers()]

    def controller_id(self):
        """Any broker can create topics; clients that insist on a controller
        get the lowest live node id, the same on every broker."""
        return min(broker.node_id for broker in self.live_brokers())

    def coordinator_for(self, group_id):
        """The BrokerAddress of the broker coordinating ``group_id`` (on a
        single broker, itself), or None when no live broker does now."""
        if self.cluster is None:
            return self.live_brokers()[0]
        node_id = self.cluster.slot_owner(self.cluster.slot_of(group_id))
        broker = None if node_id is None else self.cluster.broker(node_id)
        return None if broker is None else BrokerAddress(broker.node_id, broker.host, broker.port, broker.rack)

    def coordinates(self, group_id):
        """Whether this broker coordinates ``group_id`` now."""
        return self.cluster is None or self.cluster.holds_slot(self.cluster.slot_of(group_id))

    def subscribe_coordination(self, callback):
        """Call ``callback(slot, held)`` when this broker gains (``held``
        True) or loses a coordinator slot; groups whose
        ``cluster.slot_of(group_id)`` is that slot moved. When the broker
        hands a slot over (the assignment moved it, or a graceful stop), it
        waits for the callback's result (it may return a Deferred) before
        another broker can take the slot. A single broker never calls it.
        -> a callable that unsubscribes."""
        if self.cluster is None:
            return lambda: None
        return self.cluster.subscribe_slots(callback)

    def leader_of(self, topic, partition):
        """(leader node id, leader epoch), or (-1, -1) when no one owns it."""
        partition_log = self.logs.get((topic, partition))
        if partition_log is not None:
            return self.node_id, partition_log.leader_epoch
        if self.cluster is None:
            return -1, -1
        owner = self.cluster.owner(topic, partition)
        info = self.topics.get(topic)
        if owner is None or info is None or owner.topic_id != info.topic_id or self.cluster.broker(owner.node_id) is None:
            return -1, -1
        return owner.node_id, owner.epoch

    def log_for(self, topic, partition):
        """The PartitionLog this broker owns, or a KafkaError saying why not."""
        partition_log = self.logs.get((topic, partition))
        if partition_log is not None:
            return partition_log
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < info.partitions:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)


def _all(coroutines):
    """Run coroutines concurrently; -> a Deferred firing when all have ended
    (failures are logged, not raised)."""
    def logged(failure):
        log.failure("partition change failed", failure)

    return gatherResults([Deferred.fromCoroutine(c).addErrback(logged) for c in coroutines])
