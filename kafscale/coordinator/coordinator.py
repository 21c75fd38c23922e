"""The group coordinator: the consumer groups this broker coordinates and
their committed offsets.

A group lives in memory on its coordinator, loaded from the metadata store
when a request first touches it there, so that after a coordinator change
the members find their group (generation, members, assignments) and carry
on or rejoin. Committed offsets live in the store alone: fetches read it,
and a group's commits are written in order, those arriving during a write
merged into the next.
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, FirstError, gatherResults
from twisted.python.failure import Failure

from kafscale.coordinator.group import Group, GroupState, GroupSummary
from kafscale.log import logger
from kafscale.metadata import group_configs
from kafscale.metadata.interfaces import MetadataError
from kafscale.metadata.topic_configs import with_changes
from kafscale.coordinator.errors import (
    CoordinatorUnavailable,
    GroupNotEmpty,
    GroupNotFound,
    IllegalGeneration,
    InvalidGroupId,
    InvalidSessionTimeout,
    NotCoordinator,
    SubscribedToTopic,
    UnknownMember,
)

log = logger("kafscale.coordinator")


class GroupCoordinator(Service):
    """Serves the group APIs for the groups this broker coordinates.

    ``metadata`` (an IMetadataStore) keeps the groups and their offsets;
    ``view`` (an IClusterView) says which groups this broker coordinates
    (`coordinates`, `coordinator_for`, `slot_of`) and tells when a
    coordinator slot comes or goes (`subscribe_slots`); ``config`` (the
    BrokerConfig) gives the group settings; ``clock`` (an IReactorTime) runs
    the members' timers.

    Every public coroutine raises a GroupError saying why it refuses.
    """

    def __init__(self, metadata, view, config, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.metadata = metadata
        self.view = view
        self.config = config
        self._clock = clock
        self._groups = {}
        self._write_locks = {}  # group id -> DeferredLock, so a group's writes land in order
        self._writes = set()  # state writes in flight, awaited on stop
        self._offset_batches = {}  # group id -> _OffsetBatch waiting for the group's next write
        self._released_slots = set()  # coordinator slots given up, though perhaps not yet handed over
        self._unsubscribe = None
        self.rebalances = 0
        """Rebalances completed by the groups coordinated here (for metrics)."""

    def startService(self):
        super().startService()
        self._unsubscribe = self.view.subscribe_slots(self._coordination_changed)

    def stopService(self):
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for group_id in list(self._groups):
            self._unload(group_id)
        return gatherResults(list(self._writes), consumeErrors=True).addErrback(lambda _: None)

    def _rebalanced(self):
        self.rebalances += 1

    def loaded(self):
        """group id -> Group, of the groups in memory here (for metrics)."""
        return self._groups

    # -- coordination ----------------------------------------------------

    def _coordinates(self, group_id):
        if not self.view.coordinates(group_id):
            return False
        return not self._released_slots or self.view.slot_of(group_id) not in self._released_slots

    def _check_coordinator(self, group_id):
        if self._coordinates(group_id):
            return
        self._unload(group_id)
        if self.view.coordinator_for(group_id) is None:
            raise CoordinatorUnavailable()
        raise NotCoordinator()

    def _coordination_changed(self, slot, held):
        """A coordinator slot came or went. Its groups in memory are stale
        either way: drop them (answering their waiting members
        NotCoordinator, so they look for the coordinator again); they are
        loaded afresh from the store when next touched here. When the slot
        goes, the groups' writes under way finish before another broker may
        take it. -> a Deferred, or None."""
        slot_of = self.view.slot_of
        if held:
            self._released_slots.discard(slot)
        else:
            self._released_slots.add(slot)
        for group_id in [g for g in self._groups if slot_of(g) == slot]:
            self._unload(group_id)
        if held:
            return None
        return Deferred.fromCoroutine(self._writes_finished([g for g in self._write_locks if slot_of(g) == slot]))

    async def _writes_finished(self, group_ids):
        for group_id in group_ids:
            lock = self._write_locks.get(group_id)
            if lock is not None:
                await lock.acquire()
                self._release(group_id, lock)

    def _unload(self, group_id):
        group = self._groups.pop(group_id, None)
        if group is not None:
            log.info("group {group} is no longer coordinated here", group=group_id)
            group.close(NotCoordinator())

    async def _group(self, group_id):
        """The group, loaded from the store on first touch; None if it has
        no state in memory or in the store."""
        self._check_coordinator(group_id)
        group = self._groups.get(group_id)
        if group is not None:
            return group
        try:
            snapshot = await self.metadata.load_group(group_id)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None
        self._check_coordinator(group_id)
        # Another request may have loaded or created it meanwhile.
        group = self._groups.get(group_id)
        if group is None and snapshot is not None:
            group = Group.restore(group_id, snapshot, self._clock, self._initial_delay_ms, self._persist,
                                  self._rebalanced)
            self._groups[group_id] = group
            log.info("group {group} loaded at generation {generation}, {state}",
                     group=group_id, generation=group.generation_id, state=group.state.value)
        return group

    @property
    def _initial_delay_ms(self):
        return self.config.group_initial_rebalance_delay_ms

    def _persist(self, group_id, snapshot):
        written = Deferred.fromCoroutine(self._write(group_id, self.metadata.save_group, group_id, snapshot))
        self._writes.add(written)

        def finished(result):
            self._writes.discard(written)
            return result

        return written.addBoth(finished)

    async def _write(self, group_id, operation, *args):
        """Run a store write for the group after its earlier ones, and only
        while this broker still coordinates it."""
        lock = self._write_locks.setdefault(group_id, DeferredLock())
        await lock.acquire()
        try:
            self._check_coordinator(group_id)
            return await operation(*args)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None
        finally:
            self._release(group_id, lock)

    def _release(self, group_id, lock):
        # Releasing runs the next holder at once, which may release and
        # drop the lock before this call returns.
        lock.release()
        if not lock.locked and self._write_locks.get(group_id) is lock:
            del self._write_locks[group_id]

    # -- membership ------------------------------------------------------

    async def join_group(self, group_id, request):
        """-> JoinResult for a JoinRequest."""
        _check_group_id(group_id)
        self._check_coordinator(group_id)
        config = self.config
        if not config.group_min_session_timeout_ms <= request.session_timeout_ms <= config.group_max_session_timeout_ms:
            raise InvalidSessionTimeout()
        group = await self._group(group_id)
        if group is None:
            if request.member_id:
                raise UnknownMember()
            group = self._groups[group_id] = Group(group_id, self._clock, self._initial_delay_ms, self._persist,
                                                   self._rebalanced)
        return await group.join(request)

    async def sync_group(self, group_id, member_id, group_instance_id, generation_id,
                         protocol_type, protocol_name, assignments):
        """-> SyncResult; ``assignments`` maps member ids to bytes."""
        _check_group_id(group_id)
        group = await self._group(group_id)
        if group is None:
            raise UnknownMember()
        return await group.sync(member_id, group_instance_id, generation_id, protocol_type, protocol_name, assignments)

    async def heartbeat(self, group_id, member_id, group_instance_id, generation_id):
        _check_group_id(group_id)
        group = await self._group(group_id)
        if group is None:
            raise UnknownMember()
        group.heartbeat(member_id, group_instance_id, generation_id)

    async def leave_group(self, group_id, leaving):
        """``leaving``: (member id, group instance id) pairs. -> for each,
        None or the GroupError refusing it."""
        _check_group_id(group_id)
        group = await self._group(group_id)
        if group is None:
            return [UnknownMember() for _ in leaving]
        return group.leave(leaving)

    # -- offsets ---------------------------------------------------------

    async def commit_offsets(self, group_id, member_id, group_instance_id, generation_id, offsets):
        """Store ``offsets`` ((topic, partition) -> CommittedOffset) if the
        group lets this member commit in this generation. A group unknown
        here takes only commits outside group management (generation -1);
        others fail with GroupNotFound."""
        group = await self._group(group_id)
        if group is not None:
            group.check_offset_commit(member_id, group_instance_id, generation_id)
        elif generation_id >= 0:
            raise GroupNotFound()
        elif member_id:
            raise UnknownMember()
        await self._store_offsets(group_id, offsets)

    async def check_txn_offset_commit(self, group_id, member_id, group_instance_id, generation_id):
        """KIP-447: a transactional producer's offsets name the consumer
        they were read by; raise GroupError when that consumer is no longer
        the group's (a zombie's offsets). A group unknown here has no
        members and no generation."""
        group = await self._group(group_id)
        if group is not None:
            group.check_txn_offset_commit(member_id, group_instance_id, generation_id)
        elif member_id:
            raise UnknownMember()
        elif generation_id >= 0:
            raise IllegalGeneration()

    def _store_offsets(self, group_id, offsets):
        """Write offsets after the group's earlier writes, so that a later
        commit is never overwritten by an earlier one. Commits arriving
        while a write is under way go together in the next. -> Deferred."""
        batch = self._offset_batches.get(group_id)
        if batch is not None:
            batch.offsets.update(offsets)
            return batch.wait()
        batch = self._offset_batches[group_id] = _OffsetBatch(offsets)
        waiting = batch.wait()
        # The write may start at once, so the batch is complete before.
        Deferred.fromCoroutine(self._write(group_id, self._commit_batch, group_id, batch)).addBoth(batch.written)
        return waiting

    def _commit_batch(self, group_id, batch):
        # From now on new commits make the next batch.
        del self._offset_batches[group_id]
        return self.metadata.commit_offsets(group_id, batch.offsets)

    async def fetch_offsets(self, group_id, partitions=None):
        """-> (topic, partition) -> CommittedOffset for those committed among
        ``partitions``, or for all when it is None."""
        self._check_coordinator(group_id)
        try:
            return await self.metadata.fetch_offsets(group_id, partitions)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None

    # -- administration --------------------------------------------------

    async def describe_group(self, group_id):
        """-> GroupSummary. A group that has only committed offsets is
        Empty; one with nothing raises GroupNotFound."""
        group = await self._group(group_id)
        if group is not None:
            return group.describe()
        if await self.fetch_offsets(group_id):
            return _offsets_only(group_id)
        raise GroupNotFound(f"Group {group_id} not found.")

    async def list_groups(self):
        """-> GroupSummary (members left out) of every group this broker
        coordinates, sorted by group id."""
        try:
            stored = await self.metadata.groups()
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None
        group_ids = sorted(g for g in set(stored) | set(self._groups) if self._coordinates(g))
        try:
            groups = await gatherResults([Deferred.fromCoroutine(self._group(g)) for g in group_ids],
                                         consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()
        summaries = []
        for group_id, group in zip(group_ids, groups):
            if group is None:
                summaries.append(_offsets_only(group_id))
            elif group.state is not GroupState.DEAD:
                summary = group.describe()
                summaries.append(GroupSummary(group_id, summary.state, summary.protocol_type, "", ()))
        return summaries

    async def delete_group(self, group_id):
        """Delete an empty group with its offsets. Raises GroupNotEmpty
        while it has members, GroupNotFound if there is nothing."""
        group = await self._group(group_id)
        if group is not None:
            if group.state is not GroupState.EMPTY:
                raise GroupNotEmpty()
            del self._groups[group_id]
            group.close(UnknownMember())
        existed = await self._write(group_id, self.metadata.delete_group, group_id)
        if group is None and not existed:
            raise GroupNotFound()
        log.info("group {group} deleted", group=group_id)


    async def delete_offsets(self, group_id, partitions):
        """Delete the group's committed offsets for ``partitions`` ((topic,
        partition) pairs), as Kafka's OffsetDelete does: all of them when
        the group has no members; while it has, those of topics its
        consumers do not subscribe to. -> (topic, partition) -> None, or the
        GroupError refusing that partition (SubscribedToTopic). Raises
        GroupNotFound when the group has nothing, GroupNotEmpty for a group
        with members that is not a consumer group."""
        _check_group_id(group_id)
        group = await self._group(group_id)
        if group is None:
            if not await self.fetch_offsets(group_id):
                raise GroupNotFound(f"Group {group_id} not found.")
            subscribed = set()
        elif group.state is GroupState.DEAD:
            raise GroupNotFound(f"Group {group_id} not found.")
        elif group.state is GroupState.EMPTY:
            subscribed = set()
        elif group.protocol_type != "consumer":
            raise GroupNotEmpty(f"group {group_id} has members")
        else:
            subscribed = group.subscribed_topics()
        results = {
            (topic, partition): (SubscribedToTopic(f"group {group_id} consumes {topic}")
                                 if subscribed is None or topic in subscribed else None)
            for topic, partition in partitions
        }
        deleted = [key for key, refusal in results.items() if refusal is None]
        if deleted:
            await self._write(group_id, self.metadata.delete_offsets, group_id, deleted)
        return results

    async def configs(self, group_id):
        """-> the configs set on the group, whether or not it exists; any
        broker answers, as in Kafka."""
        try:
            return await self.metadata.group_configs(group_id)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None

    async def alter_configs(self, group_id, updates, deletions, validate_only=False):
        """Remove ``deletions`` from the group's configs and set ``updates``,
        unless ``validate_only``. Raises InvalidConfig for a name or value
        Kafka refuses, judged on the configs the group would have."""
        current = await self.configs(group_id)
        group_configs.validate(with_changes(current, updates, deletions))
        if validate_only:
            return
        try:
            await self.metadata.alter_group_configs(group_id, updates, deletions)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None


class _OffsetBatch:
    """Offsets to commit in one write, and the requests waiting for it."""

    def __init__(self, offsets):
        self.offsets = dict(offsets)
        self._waiters = []

    def wait(self):
        waiter = Deferred()
        self._waiters.append(waiter)
        return waiter

    def written(self, result):
        for waiter in self._waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)


def _check_group_id(group_id):
    # Only the offset and admin APIs accept the empty group id, as in Kafka.
    if not group_id:
        raise InvalidGroupId()


def _offsets_only(group_id):
    return GroupSummary(group_id, GroupState.EMPTY.value, "", "", ())
