"""The cluster as one broker sees it: which brokers are live, which
partitions and consumer groups this broker may serve, and the taking and
handing over of partitions.

Two views provide it: `SoleBroker`, for a broker alone on its metadata store
(the embedded default), which owns everything; and the etcd `Cluster`, for
brokers that share an etcd and split the partitions and groups between them.
The broker's reconciliation, group coordinator and handlers ask the view and
never which one it is.
"""

import zlib

from twisted.application.service import Service
from zope.interface import Attribute, Interface, implementer

from kafscale.metadata.interfaces import BrokerInfo, Fenced, MetadataUnavailable

SLOTS = 64
"""Consumer groups hash onto this many coordinator slots."""


def slot_of(group_id, slots=SLOTS):
    """The coordinator slot of a consumer group."""
    return zlib.crc32(group_id.encode()) % slots


class IClusterView(Interface):
    """This broker's view of its cluster.

    A provider is also an `twisted.application.service.IService`, started
    after the metadata store it uses and stopped before it. Between `join`
    and `leave` it answers from memory: every query is synchronous.
    """

    node_id = Attribute("This broker's node id: None before `join` when the cluster allocates it.")

    def join():
        """Announce this broker to the others. -> a Deferred firing with its
        node id. Raises MetadataUnavailable when the store cannot be reached
        (try again later)."""

    def leave():
        """The first step of a graceful stop: drop out of the assignment (so
        that each partition's successor may take it once released) and hand
        over the coordinator slots. -> a Deferred."""

    def healthy():
        """Whether this broker may take partitions and writes now."""

    def subscribe(callback):
        """Call ``callback()`` whenever the live brokers, the owners or this
        broker's health may have changed. -> a callable that unsubscribes."""

    # -- brokers

    def live_brokers():
        """-> the live brokers' BrokerInfo (this one included while it is
        up), sorted by node id."""

    def broker(node_id):
        """-> the BrokerInfo of a live broker, or None."""

    def controller_id():
        """The node id clients are told is the controller. Any broker can
        create topics; clients that insist on a controller get the lowest
        live node id, the same on every broker."""

    # -- partitions

    def assignee(topic, partition):
        """The node id that should own a partition, or None."""

    def owner(topic, partition):
        """Who the shared view says owns a partition (an object with
        ``node_id``, ``epoch`` and ``topic_id``), or None when no one does
        or only this broker could know."""

    def holds(topic, partition):
        """Whether this broker certainly still holds the partition it
        acquired (no one has taken it since)."""

    def taken_by_another(topic, partition):
        """Whether another broker took the partition since this one last
        acquired it."""

    def free(topic, partition):
        """Whether the partition may be acquired here, as far as the view
        tells."""

    def acquire(topic, partition):
        """Take a partition at a new leader epoch. -> a Deferred firing
        with its PartitionState. Raises UnknownTopic, OwnedElsewhere (another
        broker holds it), MetadataError."""

    def release(topic, partition):
        """Let go of a partition (its log is flushed and closed), so that its
        next owner may take it at once. -> a Deferred. Raises MetadataError."""

    # -- consumer-group coordination

    def slot_of(group_id):
        """The coordinator slot of a consumer group."""

    def coordinates(group_id):
        """Whether this broker coordinates the group now."""

    def coordinator_for(group_id):
        """The BrokerInfo of the broker coordinating the group, or None
        when no live broker does now."""

    def subscribe_slots(callback):
        """Call ``callback(slot, held)`` when this broker gains (``held``
        True) or loses a coordinator slot; the groups whose `slot_of` is
        that slot moved. When the broker hands a slot over, it waits for the
        callback's result (it may return a Deferred) before another broker
        can take the slot. -> a callable that unsubscribes."""


@implementer(IClusterView)
class SoleBroker(Service):
    """The view of a broker alone on its metadata store: it is the only
    live broker, the assignee and holder of every partition and coordinator
    of every group, and always healthy. Acquiring a partition is a claim, a
    new leader epoch, with nothing to release: nothing but this broker's own
    logs holds a partition."""

    def __init__(self, store, node_id, host, port, rack=None, clock=None, listeners=()):
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.node_id = node_id
        self._address = (host, port, rack, tuple(listeners))
        self._clock = clock
        self._started_ms = 0

    async def join(self):
        self._started_ms = int(self._clock.seconds() * 1000)
        await self.store.register_broker(BrokerInfo(self.node_id, *self._address[:3], self._started_ms))
        return self.node_id

    async def leave(self):
        """Its registration lasts as long as its store runs."""

    def healthy(self):
        return True

    def subscribe(self, callback):
        """Nothing changes but the topics, which the broker follows itself."""
        return lambda: None

    def live_brokers(self):
        host, port, rack, listeners = self._address
        return [BrokerInfo(self.node_id, host, port, rack, self._started_ms, listeners)]

    def broker(self, node_id):
        return next((info for info in self.live_brokers() if info.node_id == node_id), None)

    def controller_id(self):
        return self.node_id

    def assignee(self, topic, partition):
        return self.node_id

    def owner(self, topic, partition):
        return None

    def holds(self, topic, partition):
        return True

    def taken_by_another(self, topic, partition):
        return False

    def free(self, topic, partition):
        return True

    async def acquire(self, topic, partition):
        """Claim the partition at the next leader epoch. Raises UnknownTopic,
        MetadataUnavailable (another writer kept winning)."""
        for _ in range(3):
            state = await self.store.partition_state(topic, partition)
            try:
                return await self.store.claim_partition(topic, partition, state.leader_epoch)
            except Fenced:
                continue
        raise MetadataUnavailable(f"{topic}-{partition}: the claim kept losing to another writer")

    async def release(self, topic, partition):
        """Nothing holds the partition but the broker's own log."""

    def slot_of(self, group_id):
        return slot_of(group_id)

    def coordinates(self, group_id):
        return True

    def coordinator_for(self, group_id):
        return self.live_brokers()[0]

    def subscribe_slots(self, callback):
        """Every slot is this broker's for its whole life: no call comes."""
        return lambda: None
