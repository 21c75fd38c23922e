"""A broker's membership of a cluster that shares one etcd.

Every broker registers under its store's session lease and watches three
kinds of key (see kafscale.etcd.layout), so each holds the same view within
a few milliseconds of a change: the live brokers (``brokers/``), who owns
each partition at which leader epoch (``owners/``), and who coordinates each
consumer-group slot (``coordinators/``).

Assignment is rendezvous hashing over the live brokers: a partition (or a
slot) goes to the broker with the highest hash of (its name, the broker's
node id). Every broker computes the same answer from the same live set, and
a broker joining or leaving changes the answer only for the partitions it
wins or had won.

The owner keys are the truth, not the hash: a broker serves a partition
only after it wrote the owner key under its lease, in the transaction that
bumped the partition's leader epoch (`IOwnershipStore.acquire_partition`),
and Metadata names whoever holds the key. The hash only says who should
take a partition when it is free and who should hand it over.

A broker stops taking writes when its lease is at risk: when it has not
been renewed for two thirds of its TTL (`healthy()` turns false), well
before etcd could let it expire and hand its partitions to others. Commits
are fenced by the epoch in any case; this keeps a cut-off broker from
accepting produce it cannot commit.
"""

import hashlib
import inspect
import itertools

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import LoopingCall, deferLater
from zope.interface import implementer

from kafscale.coalescing import Coalescing
from kafscale.etcd import layout
from kafscale.etcd.client import EtcdError, EtcdUnavailable
from kafscale.log import logger
from kafscale.metadata.interfaces import BrokerInfo, MetadataError, MetadataUnavailable, NodeIdInUse
from kafscale.metadata.view import SLOTS, IClusterView, slot_of

log = logger("kafscale.etcd.cluster")

FIRST_ALLOCATED_NODE_ID = 1001
"""Node ids allocated from etcd start here, as Kafka's do (above
reserved.broker.max.id), so they never meet ids given on the command line."""

# Concurrent etcd transactions when taking or handing over many partitions.
CONCURRENT_CHANGES = 16

# Subscribers hear at least this often (seconds), so that a change that
# failed (etcd away, say) is tried again without waiting for an event.
SWEEP_INTERVAL = 2.0


def rendezvous(name, node_ids):
    """The node id, of ``node_ids``, that wins ``name`` (bytes); None if
    there are none."""
    best, best_score = None, -1
    for node_id in node_ids:
        digest = hashlib.blake2b(name + b"@" + str(node_id).encode(), digest_size=8).digest()
        score = int.from_bytes(digest, "big")
        if score > best_score:
            best, best_score = node_id, score
    return best


def partition_name(topic, partition):
    return f"partition/{topic}/{partition}".encode()


def slot_name(slot):
    return f"slot/{slot}".encode()


class _PrefixView:
    """Every key under a prefix as etcd's events left it: loaded with one
    range, then followed by a watch from the next revision (reloaded if
    etcd compacted the history the watch needed)."""

    def __init__(self, client, prefix, key_of, value_of, on_change, clock):
        self.items = {}
        self._client = client
        self._clock = clock
        self._prefix = prefix
        self._key_of = key_of  # key -> what it names
        self._value_of = value_of  # KeyValue -> the item
        self._on_change = on_change
        self._watch = None
        self._stopped = False

    async def start(self):
        reply = await self._client.range(self._prefix, prefix=True)
        self.items = {self._key_of(kv.key): self._value_of(kv) for kv in reply.kvs}
        self._watch = self._client.watch(
            self._prefix, prefix=True, start_revision=reply.header_revision + 1,
            callback=self._events, on_compacted=self._compacted,
        )
        await self._watch.ready()

    async def stop(self):
        self._stopped = True
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None

    def _events(self, events, revision):
        for event in events:
            key = self._key_of(event.kv.key)
            if event.type == "DELETE":
                self.items.pop(key, None)
            else:
                self.items[key] = self._value_of(event.kv)
        self._on_change()

    def _compacted(self, revision):
        self._watch = None
        Deferred.fromCoroutine(self._restart()).addErrback(
            lambda failure: log.failure("cannot reload {prefix!r}", failure, prefix=self._prefix))

    async def _restart(self):
        delay = 0.1
        while self._watch is None and not self._stopped:
            try:
                await self.start()
            except EtcdError as error:
                log.warn("reloading {prefix!r} failed: {error}", prefix=self._prefix, error=error)
                await deferLater(self._clock, delay)
                delay = min(2 * delay, 2.0)
        if self._stopped:
            # Stopped while reloading: the watch just made must not outlive it.
            await self.stop()
            return
        self._on_change()


@implementer(IClusterView)
class Cluster(Service):
    """This broker's membership: registration, the views, the owner keys of
    its partitions and coordinator slots.

    ``store`` is a running IOwnershipStore; ``node_id`` None means
    allocate one. The broker drives partitions (`acquire`, `release`,
    `assignee`, `owner`); the cluster itself takes and hands over
    coordinator slots, and tells `subscribe_slots` callbacks.
    """

    def __init__(self, store, host, port, rack=None, node_id=None, slots=SLOTS, reactor=None, listeners=()):
        if reactor is None:
            from twisted.internet import reactor
        self.store = store
        self.node_id = node_id
        self.slots = slots
        self._address = (host, port, rack, tuple(listeners))
        self._reactor = reactor
        self._subscribers = []
        self._slot_subscribers = []
        self._views = {}
        self._joined = False
        self._leaving = False
        self._acquired = {}  # (topic, partition) -> (revision, lease) of our owner key write
        self._held_slots = {}  # slot -> (revision, lease) of our owner key write
        self._healthy = False
        self._last_sweep = 0.0
        self._assignments = {}  # name -> node id, for the live set in _assigned_for
        self._assigned_for = None
        self._slot_changes = Coalescing(self._slots_once, "coordinator slot changes")
        self._limit = DeferredSemaphore(CONCURRENT_CHANGES)
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = reactor

    # -- lifetime --------------------------------------------------------

    async def join(self):
        """Load the views, register this broker (allocating its node id if
        it has none) and start taking coordinator slots. -> the node id.
        Raises MetadataUnavailable when etcd cannot be reached, NodeIdInUse
        when a given node id stays taken."""
        keys = self.store.keys
        client = self.store.client
        self._views = {
            name: _PrefixView(client, keys.area(prefix), key_of, value_of, self._changed, self._reactor)
            for name, prefix, key_of, value_of in [
                ("brokers", "brokers/", keys.node_id, lambda kv: layout.decode_broker(kv.value)),
                ("owners", "owners/", keys.topic_partition, layout.decode_owner),
                ("slots", "coordinators/", keys.slot, layout.decode_owner),
            ]
        }
        try:
            for view in self._views.values():
                await view.start()
            await self._register()
        except (EtcdUnavailable, MetadataUnavailable) as error:
            for view in self._views.values():
                await view.stop()
            if isinstance(error, EtcdUnavailable):
                raise MetadataUnavailable(f"etcd: {error}") from error
            raise
        self._joined = True
        self._healthy = self._lease_healthy()
        self._ticker.start(min(0.5, self.store.lease_ttl / 6), now=False)
        self._changed()
        return self.node_id

    async def _register(self):
        host, port, rack, listeners = self._address
        started_ms = int(self._reactor.seconds() * 1000)
        session = await self.store.session()
        deadline = self._reactor.seconds() + 2 * session.lease.ttl
        taken = set()
        while True:
            node_id = self.node_id
            if node_id is None:
                # Racing allocations may pick the same id: one registers,
                # the other takes the next one.
                taken |= set(self._views["brokers"].items)
                node_id = next(n for n in itertools.count(FIRST_ALLOCATED_NODE_ID) if n not in taken)
            try:
                await self.store.register_broker(BrokerInfo(node_id, host, port, rack, started_ms, listeners),
                                                 exclusive=True)
            except NodeIdInUse:
                taken.add(node_id)
                if self.node_id is None:
                    continue
                if self._reactor.seconds() > deadline:
                    raise
                # Likely this broker's previous life, whose lease has yet to expire.
                log.warn("node id {node} is registered by a live broker; waiting", node=node_id)
                await deferLater(self._reactor, 1.0)
                continue
            self.node_id = node_id
            return

    async def leave(self):
        """The first step of a graceful stop: deregister, so that every
        broker's assignment leaves this one out, and hand over the slots.
        The caller then hands over its partitions with `release`."""
        self._leaving = True
        self._changed()
        try:
            await self.store.deregister_broker(self.node_id)
        except MetadataError as error:
            log.warn("could not deregister broker {node}: {error}", node=self.node_id, error=error)
        await self._slot_changes.run()

    def stopService(self):
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        if self._ticker.running:
            self._ticker.stop()
        await self._slot_changes.stop()
        for view in self._views.values():
            await view.stop()

    # -- the views -------------------------------------------------------

    def subscribe(self, callback):
        """Call ``callback()`` whenever the live brokers, the owners or this
        broker's health may have changed (and every SWEEP_INTERVAL regardless).
        -> a callable that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _changed(self):
        self._slot_changes.run()
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                log.failure("cluster subscriber {callback!r} failed", callback=callback)

    def _tick(self):
        healthy = self._lease_healthy()
        now = self._reactor.seconds()
        if healthy != self._healthy:
            self._healthy = healthy
            if healthy:
                log.info("broker {node}: lease healthy again", node=self.node_id)
            else:
                log.warn("broker {node}: lease at risk: not taking writes", node=self.node_id)
        elif now < self._last_sweep + SWEEP_INTERVAL:
            return
        self._last_sweep = now
        self._changed()

    def _lease_healthy(self):
        if not self._lease_alive():
            return False
        session = self.store.current_session
        return self._reactor.seconds() < session.deadline - session.lease.ttl / 3

    def healthy(self):
        """Whether this broker may take writes: it has joined, is not
        leaving, and its lease was renewed recently."""
        return self._joined and not self._leaving and self._lease_healthy()

    def live_node_ids(self):
        ids = {node_id for node_id, info in self._views["brokers"].items.items() if info is not None}
        if self._leaving:
            ids.discard(self.node_id)
        elif self._joined:
            ids.add(self.node_id)
        return ids

    def live_brokers(self):
        """The registered brokers (this one included while it is up), by node id."""
        brokers = {node_id: info for node_id, info in self._views["brokers"].items.items() if info is not None}
        if self._leaving:
            brokers.pop(self.node_id, None)
        elif self._joined and self.node_id not in brokers:
            brokers[self.node_id] = BrokerInfo(self.node_id, *self._address[:3], 0, self._address[3])
        return [brokers[node_id] for node_id in sorted(brokers)]

    def broker(self, node_id):
        """The BrokerInfo of a live broker, or None."""
        return next((info for info in self.live_brokers() if info.node_id == node_id), None)

    def controller_id(self):
        return min(self.live_node_ids(), default=-1)

    def _assigned(self, name):
        live = frozenset(self.live_node_ids())
        if live != self._assigned_for:
            self._assignments = {}
            self._assigned_for = live
        node_id = self._assignments.get(name)
        if node_id is None:
            node_id = self._assignments[name] = rendezvous(name, live)
        return node_id

    def assignee(self, topic, partition):
        """The node id that should own a partition, or None."""
        return self._assigned(partition_name(topic, partition))

    def owner(self, topic, partition):
        """The partition's layout.Owner as the owner keys say, or None."""
        return self._views["owners"].items.get((topic, partition))

    def holds(self, topic, partition):
        """Whether this broker holds the partition's owner key: it acquired
        it under the lease it still has, and no one took it since."""
        acquired = self._acquired.get((topic, partition))
        return (acquired is not None and acquired[1] == self._lease_id() and self._lease_alive()
                and not self.taken_by_another(topic, partition))

    def taken_by_another(self, topic, partition):
        """Whether another lease holds the partition's owner key, written
        after our last acquisition of it."""
        owner = self.owner(topic, partition)
        if owner is None or owner.lease == self._lease_id():
            return False
        acquired = self._acquired.get((topic, partition))
        return acquired is None or owner.revision > acquired[0]

    def free(self, topic, partition):
        """Whether the partition may be acquired here, as far as the view
        tells: no owner key, or ours."""
        owner = self.owner(topic, partition)
        return owner is None or owner.lease == self._lease_id()

    def _lease_alive(self):
        session = self.store.current_session
        return session is not None and session.alive()

    def _lease_id(self):
        session = self.store.current_session
        return None if session is None else session.lease_id

    # -- partitions ------------------------------------------------------

    async def acquire(self, topic, partition):
        """Take a partition: a new leader epoch and the owner key under this
        broker's lease. -> its PartitionState. Raises OwnedElsewhere,
        UnknownTopic, MetadataError."""
        async with self._limit:
            if not self.healthy():
                raise MetadataUnavailable(f"broker {self.node_id} cannot take partitions now")
            acquired = await self.store.acquire_partition(topic, partition, self.node_id)
        self._acquired[topic, partition] = (acquired.revision, acquired.lease)
        return acquired.state

    async def release(self, topic, partition):
        """Delete the partition's owner key if it is still ours, so the
        next owner can take it at once."""
        self._acquired.pop((topic, partition), None)
        async with self._limit:
            await self.store.release_partition(topic, partition)

    # -- coordinator slots -----------------------------------------------

    def slot_of(self, group_id):
        return slot_of(group_id, self.slots)

    def slot_assignee(self, slot):
        """The node id that should coordinate a slot, or None."""
        return self._assigned(slot_name(slot))

    def holds_slot(self, slot):
        """Whether this broker coordinates the slot now."""
        held = self._held_slots.get(slot)
        return held is not None and held[1] == self._lease_id() and self.healthy()

    def coordinates(self, group_id):
        return self.holds_slot(self.slot_of(group_id))

    def coordinator_for(self, group_id):
        node_id = self.slot_owner(self.slot_of(group_id))
        return None if node_id is None else self.broker(node_id)

    def slot_owner(self, slot):
        """The node id coordinating a slot, or None."""
        if self.holds_slot(slot):
            return self.node_id
        owner = self._views["slots"].items.get(slot)
        if owner is None or owner.node_id not in self.live_node_ids():
            return None
        return owner.node_id

    def subscribe_slots(self, callback):
        """Call ``callback(slot, held)`` when this broker gains a slot
        (``held`` True, after it took the slot) or loses one (False). When
        the broker hands a slot over, it waits for the callback's result
        (a Deferred, say) before it lets go of the slot; when it lost the
        slot already (its lease lapsed), the call is after the fact.
        -> a callable that unsubscribes."""
        self._slot_subscribers.append(callback)
        return lambda: self._slot_subscribers.remove(callback)

    async def _tell_slot(self, slot, held):
        for callback in list(self._slot_subscribers):
            try:
                result = callback(slot, held)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.failure("slot subscriber {callback!r} failed", callback=callback)

    async def _slots_once(self):
        if not self._joined:
            return
        view = self._views["slots"].items
        healthy = self.healthy()
        lease = self._lease_id()
        changes = []
        for slot in range(self.slots):
            held = self._held_slots.get(slot)
            wanted = healthy and self.slot_assignee(slot) == self.node_id
            owner = view.get(slot)
            if held is not None and (held[1] != lease or not self._lease_healthy() or (
                    owner is not None and owner.revision > held[0] and owner.lease != lease)):
                # Lost: the lease that held it lapsed (or is in doubt), or
                # someone took the slot since.
                del self._held_slots[slot]
                changes.append(self._tell_slot(slot, False))
            elif held is not None and not wanted:
                changes.append(self._hand_over_slot(slot))
            elif wanted and held is None and (owner is None or owner.lease == lease):
                changes.append(self._take_slot(slot, owner))
        if changes:
            await gatherResults([Deferred.fromCoroutine(change) for change in changes], consumeErrors=True)

    async def _take_slot(self, slot, owner):
        try:
            async with self._limit:
                taken = await self.store.take_slot(slot, self.node_id, 0 if owner is None else owner.revision)
        except MetadataError as error:
            log.warn("could not take coordinator slot {slot}: {error}", slot=slot, error=error)
            return
        if taken is not None:
            self._held_slots[slot] = (taken.revision, taken.lease)
            await self._tell_slot(slot, True)

    async def _hand_over_slot(self, slot):
        del self._held_slots[slot]
        await self._tell_slot(slot, False)
        try:
            async with self._limit:
                await self.store.release_slot(slot)
        except MetadataError as error:
            log.warn("could not hand over coordinator slot {slot}: {error}", slot=slot, error=error)
