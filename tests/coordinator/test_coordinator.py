"""The group coordinator over a real embedded metadata store: groups
persisted on state changes and picked up by a new coordinator, coordinator
ownership, offsets and the administration calls."""

import os
import tempfile
from dataclasses import dataclass, field

from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial import unittest

from kafscale.config import BrokerConfig
from kafscale.coordinator.coordinator import GroupCoordinator
from kafscale.coordinator.errors import (
    CoordinatorUnavailable,
    GroupNotEmpty,
    GroupNotFound,
    IllegalGeneration,
    InvalidGroupId,
    InvalidSessionTimeout,
    MemberIdRequired,
    NotCoordinator,
    UnknownMember,
)
from kafscale.coordinator.group import JoinRequest
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import BrokerInfo, CommittedOffset, MetadataUnavailable

HERE = BrokerInfo(0, "127.0.0.1", 9092, None, 0)
ELSEWHERE = BrokerInfo(1, "127.0.0.1", 9093, None, 0)
DELAY_S = BrokerConfig().group_initial_rebalance_delay_ms / 1000


@dataclass
class ViewStandIn:
    """The coordination part of a cluster view in which every group hashes
    to slot 0; ``owner`` says who coordinates every group."""

    node_id: int = 0
    owner: BrokerInfo | None = HERE
    slot_callbacks: list = field(default_factory=list)

    def slot_of(self, group_id):
        return 0

    def coordinator_for(self, group_id):
        return self.owner

    def coordinates(self, group_id):
        return self.owner is not None and self.owner.node_id == self.node_id

    def subscribe_slots(self, callback):
        self.slot_callbacks.append(callback)
        return lambda: self.slot_callbacks.remove(callback)

    async def hand_over_slot(self):
        """As the cluster does: tell the coordinators, wait, then let go."""
        for callback in list(self.slot_callbacks):
            await callback(0, False)
        self.owner = ELSEWHERE


def join_request(member_id="", instance=None):
    return JoinRequest(member_id, instance, "client", "/127.0.0.1", 10000, 30000,
                       "consumer", [("range", b"subscription")], True)


class CoordinatorTestCase(unittest.TestCase):
    def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-coordinator-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.db"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.saves = []
        save_group = self.store.save_group

        def counting_save(group_id, state):
            self.saves.append(group_id)
            return save_group(group_id, state)

        self.store.save_group = counting_save
        self.view = ViewStandIn()
        self.clock = task.Clock()
        self.coordinator = self.start_coordinator()

    def start_coordinator(self):
        coordinator = GroupCoordinator(self.store, self.view, BrokerConfig(), self.clock)
        coordinator.startService()
        self.addCleanup(coordinator.stopService)
        return coordinator

    async def assertFailsWith(self, kind, coroutine):
        with self.assertRaises(kind):
            await coroutine

    async def form_group(self, group_id="g"):
        """A one-member Stable group. -> its JoinResult."""
        with self.assertRaises(MemberIdRequired) as raised:
            await self.coordinator.join_group(group_id, join_request())
        required = raised.exception
        joining = Deferred.fromCoroutine(self.coordinator.join_group(group_id, join_request(required.member_id)))
        self.clock.advance(DELAY_S)
        joined = await joining
        synced = await self.coordinator.sync_group(
            group_id, joined.member_id, None, joined.generation_id, "consumer", "range",
            {joined.member_id: b"assignment"},
        )
        self.assertEqual(synced.assignment, b"assignment")
        return joined


class PersistenceTests(CoordinatorTestCase):
    async def test_new_coordinator_picks_up_the_group(self):
        joined = await self.form_group()
        await self.coordinator.stopService()
        # Another coordinator takes over (a restart, or another broker).
        successor = self.start_coordinator()
        summary = await successor.describe_group("g")
        self.assertEqual((summary.state, summary.protocol_type, summary.protocol_name), ("Stable", "consumer", "range"))
        [member] = summary.members
        self.assertEqual((member.member_id, member.metadata, member.assignment),
                         (joined.member_id, b"subscription", b"assignment"))
        # The member carries on where it was, or rejoins with its id.
        await successor.heartbeat("g", joined.member_id, None, 1)
        rejoined = await successor.join_group("g", join_request(joined.member_id))
        self.assertEqual(rejoined.generation_id, 2)

    async def test_state_saved_on_changes_only(self):
        joined = await self.form_group()
        self.assertEqual(self.saves, ["g"])  # the assignment of generation 1
        for _ in range(5):
            self.clock.advance(1)
            await self.coordinator.heartbeat("g", joined.member_id, None, 1)
        self.assertEqual(self.saves, ["g"])
        self.assertEqual(await self.coordinator.leave_group("g", [(joined.member_id, None)]), [None])
        await self.coordinator.stopService()  # waits for the write of the empty group
        self.assertEqual(self.saves, ["g", "g"])
        stored = await self.store.load_group("g")
        self.assertEqual((stored["generation_id"], stored["members"]), (2, []))

    async def test_unknown_member_of_unknown_group(self):
        await self.assertFailsWith(UnknownMember,
                                   self.coordinator.join_group("g", join_request("client-1")))
        await self.assertFailsWith(UnknownMember, self.coordinator.heartbeat("g", "client-1", None, 1))
        await self.assertFailsWith(UnknownMember,
                                   self.coordinator.sync_group("g", "client-1", None, 1, None, None, {}))
        self.assertEqual([type(e) for e in await self.coordinator.leave_group("g", [("client-1", None)])], [UnknownMember])

    async def test_request_checks(self):
        await self.assertFailsWith(InvalidGroupId, self.coordinator.join_group("", join_request()))
        await self.assertFailsWith(InvalidGroupId, self.coordinator.heartbeat("", "m", None, 1))
        too_short = JoinRequest("", None, "c", "/h", 5999, 30000, "consumer", [("range", b"")], True)
        await self.assertFailsWith(InvalidSessionTimeout, self.coordinator.join_group("g", too_short))
        too_long = JoinRequest("", None, "c", "/h", 1800001, 30000, "consumer", [("range", b"")], True)
        await self.assertFailsWith(InvalidSessionTimeout, self.coordinator.join_group("g", too_long))


class OwnershipTests(CoordinatorTestCase):
    async def test_groups_elsewhere_are_not_coordinated_here(self):
        self.view.owner = ELSEWHERE
        await self.assertFailsWith(NotCoordinator, self.coordinator.join_group("g", join_request()))
        await self.assertFailsWith(NotCoordinator, self.coordinator.fetch_offsets("g"))
        await self.assertFailsWith(NotCoordinator, self.coordinator.delete_group("g"))
        self.view.owner = None
        await self.assertFailsWith(CoordinatorUnavailable, self.coordinator.heartbeat("g", "m", None, 1))

    async def test_moving_group_answers_its_waiting_members(self):
        joined = await self.form_group()
        # A newcomer's first JoinGroup keeps the next rebalance open.
        await self.assertFailsWith(MemberIdRequired, self.coordinator.join_group("g", join_request()))
        waiting = Deferred.fromCoroutine(self.coordinator.join_group("g", join_request(joined.member_id)))
        await self.view.hand_over_slot()
        await self.assertFailsWith(NotCoordinator, waiting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_hand_over_waits_for_writes_and_refuses_new_ones(self):
        joined = await self.form_group()
        offsets = {("t", 0): CommittedOffset(5, -1, "", 0)}
        committing = Deferred.fromCoroutine(self.coordinator.commit_offsets("g", joined.member_id, None, 1, offsets))
        handing_over = Deferred.fromCoroutine(self.view.hand_over_slot())
        # The broker still holds the slot until the hand-over is done, but
        # the coordinator takes no more requests for its groups.
        await self.assertFailsWith(NotCoordinator,
                                   self.coordinator.commit_offsets("g", "", None, -1, offsets))
        await handing_over
        # The commit under way was written before the slot was let go.
        self.assertEqual((await self.store.fetch_offsets("g"))[("t", 0)].offset, 5)
        await committing

    async def test_no_writes_once_the_group_moved(self):
        joined = await self.form_group()
        self.view.owner = ELSEWHERE  # moved, but nobody told this coordinator
        self.clock.advance(10)  # the member's session ends here: the group would become empty
        await self.coordinator.stopService()
        self.assertEqual(self.saves, ["g"])
        stored = await self.store.load_group("g")
        self.assertEqual([m["member_id"] for m in stored["members"]], [joined.member_id])


class OffsetTests(CoordinatorTestCase):
    async def test_commit_outside_group_management(self):
        offsets = {("t", 0): CommittedOffset(42, 3, "meta", 1000)}
        await self.coordinator.commit_offsets("simple", "", None, -1, offsets)
        self.assertEqual(await self.coordinator.fetch_offsets("simple"), offsets)
        self.assertEqual(await self.coordinator.fetch_offsets("simple", {("t", 1)}), {})
        await self.assertFailsWith(GroupNotFound,
                                   self.coordinator.commit_offsets("other", "m", None, 3, offsets))

    async def test_concurrent_commits_land_in_order_and_together(self):
        writes = []
        commit_offsets = self.store.commit_offsets

        def counting_commit(group_id, offsets):
            writes.append(dict(offsets))
            return commit_offsets(group_id, offsets)

        self.store.commit_offsets = counting_commit
        def offsets(n):
            return {("t", 0): CommittedOffset(n, -1, "", 0), ("t", n): CommittedOffset(n, -1, "", 0)}

        commits = [
            Deferred.fromCoroutine(self.coordinator.commit_offsets("simple", "", None, -1, offsets(n)))
            for n in range(1, 11)
        ]
        await gatherResults(commits)
        stored = await self.coordinator.fetch_offsets("simple")
        self.assertEqual(stored[("t", 0)].offset, 10)
        self.assertEqual(sorted(partition for _, partition in stored), list(range(11)))
        self.assertLess(len(writes), 10)

    async def test_member_commits_in_its_generation(self):
        joined = await self.form_group()
        offsets = {("t", 0): CommittedOffset(7, -1, "", 1000)}
        await self.coordinator.commit_offsets("g", joined.member_id, None, 1, offsets)
        await self.assertFailsWith(IllegalGeneration,
                                   self.coordinator.commit_offsets("g", joined.member_id, None, 0, offsets))
        await self.assertFailsWith(UnknownMember,
                                   self.coordinator.commit_offsets("g", "", None, -1, offsets))
        self.assertEqual((await self.coordinator.fetch_offsets("g"))[("t", 0)].offset, 7)


class AdministrationTests(CoordinatorTestCase):
    async def test_describe_list_delete(self):
        joined = await self.form_group("busy")
        await self.coordinator.commit_offsets("offsets-only", "", None, -1, {("t", 0): CommittedOffset(1, -1, "", 0)})
        await self.assertFailsWith(GroupNotFound, self.coordinator.describe_group("nothing"))
        self.assertEqual((await self.coordinator.describe_group("offsets-only")).state, "Empty")
        listed = [(s.group_id, s.protocol_type, s.state) for s in await self.coordinator.list_groups()]
        self.assertEqual(listed, [("busy", "consumer", "Stable"), ("offsets-only", "", "Empty")])

        await self.assertFailsWith(GroupNotEmpty, self.coordinator.delete_group("busy"))
        await self.coordinator.leave_group("busy", [(joined.member_id, None)])
        await self.coordinator.delete_group("busy")
        await self.coordinator.delete_group("offsets-only")
        await self.assertFailsWith(GroupNotFound, self.coordinator.delete_group("busy"))
        self.assertEqual(await self.coordinator.list_groups(), [])
        self.assertEqual(await self.store.groups(), [])

    async def test_list_loads_stored_groups(self):
        await self.form_group()
        await self.coordinator.stopService()
        successor = self.start_coordinator()
        self.assertEqual([(s.group_id, s.state) for s in await successor.list_groups()], [("g", "Stable")])

    async def test_list_when_a_stored_group_cannot_be_loaded(self):
        """The store failing on one group of many is the Kafka error every
        coordinator call raises, not a wrapped FirstError that would fail
        the handler and close the client's connection."""
        await self.form_group("first")
        await self.form_group("second")
        await self.coordinator.stopService()
        successor = self.start_coordinator()

        def unavailable(group_id):
            raise MetadataUnavailable("etcd is away")

        self.store.load_group = unavailable
        await self.assertFailsWith(CoordinatorUnavailable, successor.list_groups())
