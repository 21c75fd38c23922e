"""The classic group state machine on a fake clock: joins, the initial
delay, rebalances, assignments, sessions, static members, offsets checks."""

from twisted.internet import task
from twisted.internet.defer import fail, succeed
from twisted.trial import unittest

from kafscale.coordinator.errors import (
    CoordinatorUnavailable,
    FencedInstance,
    GroupError,
    IllegalGeneration,
    InconsistentProtocol,
    MemberIdRequired,
    NotCoordinator,
    RebalanceInProgress,
    UnknownMember,
)
from kafscale.coordinator.group import Group, GroupState, JoinRequest

SESSION_MS = 10000
REBALANCE_MS = 60000
INITIAL_DELAY_MS = 3000


def kinds(refusals):
    """What LeaveGroup answers each member: None, or the kind of its refusal."""
    return [None if refusal is None else type(refusal) for refusal in refusals]


def join_request(member_id="", instance=None, protocols=(("range", b"r"),), session=SESSION_MS,
                 rebalance=REBALANCE_MS, client_id="client", protocol_type="consumer", require_known=True):
    return JoinRequest(member_id, instance, client_id, "/127.0.0.1", session, rebalance,
                       protocol_type, list(protocols), require_known)


class GroupTestCase(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.saved = []
        self.persist_failure = None
        self.group = Group("g", self.clock, INITIAL_DELAY_MS, self.persist)

    def persist(self, group_id, snapshot):
        self.assertEqual(group_id, "g")
        if self.persist_failure is not None:
            return fail(self.persist_failure())
        self.saved.append(snapshot)
        return succeed(None)

    def error(self, deferred):
        """The kind of GroupError ``deferred`` failed with."""
        return type(self.failureResultOf(deferred, GroupError).value)

    def join(self, **kwargs):
        """A new member's two JoinGroups (v4+). -> the pending Deferred."""
        first = self.failureResultOf(self.group.join(join_request(**kwargs)), MemberIdRequired).value
        self.assertTrue(first.member_id.startswith((kwargs.get("instance") or "client") + "-"))
        return self.group.join(join_request(member_id=first.member_id, **kwargs))

    def rejoin(self, member_id, **kwargs):
        return self.group.join(join_request(member_id=member_id, **kwargs))

    def sync_all(self, results, assignments=None):
        """Every member syncs, the leader first. -> member id -> assignment."""
        leader = next(r for r in results if r.member_id == r.leader_id)
        if assignments is None:
            assignments = {r.member_id: r.member_id.encode() for r in results}
        generation = leader.generation_id
        syncs = {leader.member_id: self.group.sync(leader.member_id, None, generation, "consumer", "range",
                                                   assignments)}
        for r in results:
            if r is not leader:
                syncs[r.member_id] = self.group.sync(r.member_id, None, generation, None, None, {})
        return {m: self.successResultOf(d).assignment for m, d in syncs.items()}

    def settle_initial_join(self):
        """Members arriving together extend the initial delay once."""
        self.clock.pump([INITIAL_DELAY_MS / 1000] * 2)

    def form(self, count, **kwargs):
        """A Stable group of ``count`` members. -> their JoinResults."""
        joining = [self.join(**kwargs) for _ in range(count)]
        self.settle_initial_join()
        results = [self.successResultOf(d) for d in joining]
        self.sync_all(results)
        self.assertIs(self.group.state, GroupState.STABLE)
        return results


class JoinTests(GroupTestCase):
    def test_member_id_required_then_initial_delay(self):
        joining = self.join()
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)
        self.clock.advance(INITIAL_DELAY_MS / 1000 - 0.001)
        self.assertNoResult(joining)
        self.clock.advance(0.001)
        result = self.successResultOf(joining)
        self.assertEqual(result.generation_id, 1)
        self.assertEqual(result.leader_id, result.member_id)
        self.assertEqual(result.protocol_type, "consumer")
        self.assertEqual(result.protocol_name, "range")
        self.assertEqual(result.members, ((result.member_id, None, b"r"),))
        self.assertIs(self.group.state, GroupState.COMPLETING_REBALANCE)

    def test_join_without_member_id_round_trip(self):
        # JoinGroup v0-v3: the member is admitted at once.
        joining = self.group.join(join_request(require_known=False))
        self.clock.advance(INITIAL_DELAY_MS / 1000)
        self.assertEqual(self.successResultOf(joining).generation_id, 1)

    def test_initial_delay_extends_while_members_arrive(self):
        first = self.join()
        self.clock.advance(2.5)
        second = self.join()
        self.clock.advance(0.5)
        self.assertNoResult(first)
        self.clock.advance(2.999)
        self.assertNoResult(second)
        self.clock.advance(0.001)
        one, two = self.successResultOf(first), self.successResultOf(second)
        self.assertEqual((one.generation_id, two.generation_id), (1, 1))
        self.assertEqual(one.leader_id, one.member_id)
        self.assertEqual(two.leader_id, one.member_id)
        self.assertEqual(len(one.members), 2)
        self.assertEqual(two.members, ())

    def test_initial_delay_capped_by_rebalance_timeout(self):
        first = self.join(rebalance=5000)
        self.clock.advance(2.9)
        self.join(rebalance=5000)
        self.clock.advance(0.1)  # 3 s: extended by what is left of 5 s
        self.assertNoResult(first)
        self.clock.advance(1.999)
        self.assertNoResult(first)
        self.clock.advance(0.001)
        self.assertEqual(self.successResultOf(first).generation_id, 1)

    def test_rebalance_completes_when_every_member_rejoined(self):
        one, two = self.form(2)
        newcomer = self.join()
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)
        self.assertRaises(RebalanceInProgress, self.group.heartbeat, one.member_id, None, 1)
        first = self.rejoin(one.member_id)
        self.assertNoResult(first)
        second = self.rejoin(two.member_id)
        # No timer needed: the last known member's join completes it.
        results = [self.successResultOf(d) for d in (first, second, newcomer)]
        self.assertEqual({r.generation_id for r in results}, {2})
        self.assertEqual(len(results[0].members), 3)

    def test_rebalance_timeout_drops_members_that_did_not_rejoin(self):
        one, two = self.form(2)
        first = self.rejoin(one.member_id)
        # two keeps heartbeating, which does not count as rejoining.
        for _ in range(int(REBALANCE_MS / 3000)):
            self.assertRaises(RebalanceInProgress, self.group.heartbeat, two.member_id, None, 1)
            self.assertNoResult(first)
            self.clock.advance(3)
        result = self.successResultOf(first)
        self.assertEqual(result.generation_id, 2)
        self.assertEqual([m[0] for m in result.members], [one.member_id])
        self.assertRaises(UnknownMember, self.group.heartbeat, two.member_id, None, 2)

    def test_follower_rejoining_unchanged_in_stable_keeps_generation(self):
        one, two = self.form(2)
        result = self.successResultOf(self.rejoin(two.member_id))
        self.assertEqual((result.generation_id, result.leader_id, result.members), (1, one.member_id, ()))
        self.assertIs(self.group.state, GroupState.STABLE)

    def test_leader_rejoining_in_stable_rebalances(self):
        one, two = self.form(2)
        leader = self.rejoin(one.member_id)
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)
        follower = self.rejoin(two.member_id)
        self.assertEqual(self.successResultOf(leader).generation_id, 2)
        self.assertEqual(self.successResultOf(follower).generation_id, 2)

    def test_member_changing_protocols_rebalances(self):
        one, two = self.form(2)
        self.rejoin(two.member_id, protocols=[("range", b"new topics")])
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)

    def test_protocol_chosen_from_what_every_member_supports(self):
        joins = [
            self.join(protocols=[("roundrobin", b"a"), ("range", b"a"), ("sticky", b"a")]),
            self.join(protocols=[("sticky", b"b"), ("range", b"b")]),
            self.join(protocols=[("range", b"c"), ("sticky", b"c")]),
        ]
        self.settle_initial_join()
        results = [self.successResultOf(d) for d in joins]
        # Votes: range (first member: roundrobin is not common), sticky, range.
        self.assertEqual({r.protocol_name for r in results}, {"range"})
        self.assertEqual([m[2] for m in results[0].members], [b"a", b"b", b"c"])

    def test_inconsistent_protocols_refused(self):
        self.form(1)
        self.assertRaises(InconsistentProtocol, self.group.join,
                              join_request(protocols=[("cooperative-sticky", b"")]))
        self.assertRaises(InconsistentProtocol, self.group.join,
                              join_request(protocol_type="connect"))
        self.assertRaises(InconsistentProtocol, Group("h", self.clock, 0, self.persist).join,
                              join_request(protocols=[]))

    def test_unknown_member_id(self):
        self.form(1)
        self.assertRaises(UnknownMember, self.group.join, join_request(member_id="nobody"))

    def test_pending_member_holds_rebalance_until_it_expires(self):
        one, = self.form(1)
        self.failureResultOf(self.group.join(join_request()), MemberIdRequired)  # never followed up
        rejoin = self.rejoin(one.member_id)
        self.assertNoResult(rejoin)
        self.clock.advance(SESSION_MS / 1000)
        self.assertEqual(self.successResultOf(rejoin).generation_id, 2)

    def test_repeated_join_answers_the_first(self):
        one, two = self.form(2)
        first = self.rejoin(one.member_id)
        second = self.rejoin(one.member_id)
        self.assertEqual(self.error(first), RebalanceInProgress)
        self.rejoin(two.member_id)
        self.assertEqual(self.successResultOf(second).generation_id, 2)


class SyncTests(GroupTestCase):
    def test_leader_assignment_used_as_sent_and_stored(self):
        joins = [self.join() for _ in range(3)]
        self.settle_initial_join()
        results = [self.successResultOf(d) for d in joins]
        leader, a, b = results
        follower_sync = self.group.sync(a.member_id, None, 1, None, None, {})
        self.assertNoResult(follower_sync)
        self.assertEqual(self.saved, [])
        # b is left out of the assignment: it gets nothing.
        leader_sync = self.group.sync(leader.member_id, None, 1, "consumer", "range",
                                      {leader.member_id: b"\x00L", a.member_id: b"\x00A", "stranger": b"?"})
        self.assertEqual(self.successResultOf(leader_sync).assignment, b"\x00L")
        self.assertEqual(self.successResultOf(follower_sync).assignment, b"\x00A")
        late = self.successResultOf(self.group.sync(b.member_id, None, 1, None, None, {}))
        self.assertEqual(late.assignment, b"")
        self.assertEqual((late.protocol_type, late.protocol_name), ("consumer", "range"))
        self.assertIs(self.group.state, GroupState.STABLE)
        [snapshot] = self.saved
        self.assertEqual(snapshot["generation_id"], 1)
        self.assertEqual(snapshot["leader_id"], leader.member_id)
        self.assertEqual([m["member_id"] for m in snapshot["members"]], [r.member_id for r in results])
        self.assertEqual([m["assignment"] for m in snapshot["members"]], ["AEw=", "AEE=", ""])

    def test_sync_errors(self):
        joins = [self.join() for _ in range(2)]
        self.settle_initial_join()
        one, two = (self.successResultOf(d) for d in joins)
        self.assertRaises(UnknownMember, self.group.sync, "nobody", None, 1, None, None, {})
        self.assertRaises(IllegalGeneration, self.group.sync, one.member_id, None, 0, None, None, {})
        self.assertRaises(InconsistentProtocol, self.group.sync,
                              one.member_id, None, 1, "consumer", "roundrobin", {})
        waiting = self.group.sync(two.member_id, None, 1, None, None, {})
        self.join()  # a newcomer: the assignment in progress is void
        self.assertEqual(self.error(waiting), RebalanceInProgress)
        self.assertRaises(RebalanceInProgress, self.group.sync, one.member_id, None, 1, None, None, {})

    def test_members_that_never_sync_are_removed(self):
        joins = [self.join() for _ in range(2)]
        self.settle_initial_join()
        one, two = (self.successResultOf(d) for d in joins)
        self.successResultOf(self.group.sync(one.member_id, None, 1, None, None, {one.member_id: b"1"}))
        # two keeps heartbeating but never syncs, for the rebalance timeout
        for _ in range(int(REBALANCE_MS / 3000) - 1):
            self.clock.advance(3)
            self.group.heartbeat(one.member_id, None, 1)
            self.group.heartbeat(two.member_id, None, 1)
        self.clock.advance(3)
        self.assertRaises(UnknownMember, self.group.heartbeat, two.member_id, None, 1)
        self.assertRaises(RebalanceInProgress, self.group.heartbeat, one.member_id, None, 1)

    def test_failed_store_fails_the_generation(self):
        joins = [self.join() for _ in range(2)]
        self.settle_initial_join()
        one, two = (self.successResultOf(d) for d in joins)
        follower = self.group.sync(two.member_id, None, 1, None, None, {})
        self.persist_failure = CoordinatorUnavailable
        leader = self.group.sync(one.member_id, None, 1, None, None, {one.member_id: b"1", two.member_id: b"2"})
        self.assertEqual(self.error(leader), CoordinatorUnavailable)
        self.assertEqual(self.error(follower), CoordinatorUnavailable)
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)


class SessionTests(GroupTestCase):
    def test_heartbeat_errors(self):
        one, = self.form(1)
        self.group.heartbeat(one.member_id, None, 1)
        self.assertRaises(IllegalGeneration, self.group.heartbeat, one.member_id, None, 2)
        self.assertRaises(UnknownMember, self.group.heartbeat, "nobody", None, 1)

    def test_silent_member_expires_and_the_survivor_takes_over(self):
        one, two = self.form(2)
        self.clock.advance(SESSION_MS / 1000 / 2)
        self.group.heartbeat(one.member_id, None, 1)
        self.clock.advance(SESSION_MS / 1000 / 2)
        self.assertNotIn(two.member_id, self.group.members)
        self.assertRaises(RebalanceInProgress, self.group.heartbeat, one.member_id, None, 1)
        result = self.successResultOf(self.rejoin(one.member_id))
        self.assertEqual((result.generation_id, len(result.members)), (2, 1))

    def test_members_waiting_on_the_group_do_not_expire(self):
        one, two = self.form(2)
        waiting = self.rejoin(one.member_id)
        # two takes almost the whole rebalance timeout to rejoin, one waits
        # for it without heartbeats.
        for _ in range(int(REBALANCE_MS / 3000) - 1):
            self.clock.advance(3)
            self.assertRaises(RebalanceInProgress, self.group.heartbeat, two.member_id, None, 1)
        self.group.join(join_request(member_id=two.member_id))
        self.assertEqual(self.successResultOf(waiting).generation_id, 2)

    def test_last_member_leaving_empties_the_group(self):
        one, two = self.form(2)
        self.assertEqual(kinds(self.group.leave([(two.member_id, None), ("nobody", None)])),
                         [None, UnknownMember])
        self.assertIs(self.group.state, GroupState.PREPARING_REBALANCE)
        self.assertEqual(kinds(self.group.leave([(one.member_id, None)])), [None])
        self.assertIs(self.group.state, GroupState.EMPTY)
        self.assertEqual(self.group.generation_id, 2)
        self.assertEqual(self.saved[-1]["members"], [])
        self.assertEqual(self.saved[-1]["protocol_type"], "consumer")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_leaving_while_joining_answers_the_join(self):
        one, two = self.form(2)
        waiting = self.rejoin(one.member_id)
        self.group.leave([(one.member_id, None)])
        self.assertEqual(self.error(waiting), UnknownMember)

    def test_close_answers_waiting_requests(self):
        one, two = self.form(2)
        waiting = self.rejoin(one.member_id)
        self.group.close(NotCoordinator())
        self.assertEqual(self.error(waiting), NotCoordinator)
        self.assertIs(self.group.state, GroupState.DEAD)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertRaises(CoordinatorUnavailable, self.group.heartbeat, two.member_id, None, 1)


class StaticMemberTests(GroupTestCase):
    def form_static(self, rebalance=REBALANCE_MS):
        joins = [self.group.join(join_request(instance=f"i{n}", rebalance=rebalance)) for n in range(2)]
        self.settle_initial_join()
        results = [self.successResultOf(d) for d in joins]
        self.assertTrue(results[0].member_id.startswith("i0-"))
        assignments = self.sync_all(results)
        return results, assignments

    def test_restart_within_session_keeps_assignment_without_rebalance(self):
        (one, two), assignments = self.form_static()
        saves = len(self.saved)
        self.clock.advance(SESSION_MS / 1000 - 1)  # two restarts: no LeaveGroup, no heartbeats
        self.group.heartbeat(one.member_id, None, 1)
        back = self.successResultOf(self.group.join(join_request(instance="i1")))
        self.assertNotEqual(back.member_id, two.member_id)
        self.assertEqual((back.generation_id, back.leader_id, back.members), (1, one.member_id, ()))
        self.assertIs(self.group.state, GroupState.STABLE)
        self.assertEqual(len(self.saved), saves + 1)
        synced = self.successResultOf(self.group.sync(back.member_id, "i1", 1, None, None, {}))
        self.assertEqual(synced.assignment, assignments[two.member_id])
        # The old incarnation is fenced; the other member never noticed.
        self.assertRaises(FencedInstance, self.group.heartbeat, two.member_id, "i1", 1)
        self.group.heartbeat(one.member_id, "i0", 1)
        self.clock.advance(5)
        self.group.heartbeat(back.member_id, "i1", 1)

    def test_static_leader_restart_skips_assignment(self):
        (one, two), _ = self.form_static()
        back = self.successResultOf(self.group.join(join_request(instance="i0")))
        self.assertTrue(back.skip_assignment)
        self.assertEqual(back.leader_id, back.member_id)
        self.assertEqual(back.previous_leader_id, one.member_id)
        self.assertEqual({m[0] for m in back.members}, {back.member_id, two.member_id})
        self.assertIs(self.group.state, GroupState.STABLE)

    def test_static_member_changing_the_protocol_rebalances(self):
        protocols = [("range", b""), ("roundrobin", b"")]
        joining = self.group.join(join_request(instance="i0", protocols=protocols))
        self.settle_initial_join()
        self.sync_all([self.successResultOf(joining)])
        self.assertRaises(InconsistentProtocol, self.group.join,
                              join_request(instance="i0", protocols=[("sticky", b"")]))
        back = self.successResultOf(self.group.join(join_request(instance="i0", protocols=protocols[::-1])))
        # It is the only member, so the rebalance completes at once.
        self.assertEqual((back.generation_id, back.protocol_name), (2, "roundrobin"))
        self.assertIs(self.group.state, GroupState.COMPLETING_REBALANCE)

    def test_absent_static_member_is_kept_through_rebalance(self):
        (one, two), _ = self.form_static(rebalance=5000)
        waiting = self.rejoin(one.member_id, instance="i0", rebalance=5000)
        self.clock.advance(5)
        # two (static) did not rejoin but stays until its session expires.
        result = self.successResultOf(waiting)
        self.assertEqual(result.generation_id, 2)
        self.assertIn(two.member_id, {m[0] for m in result.members})

    def test_leave_by_instance_id(self):
        (one, two), _ = self.form_static()
        self.assertEqual(kinds(self.group.leave([("", "i1"), ("", "i9"), ("wrong", "i0")])),
                         [None, UnknownMember, FencedInstance])
        self.assertEqual(list(self.group.members), [one.member_id])


class OffsetCommitCheckTests(GroupTestCase):
    def test_simple_commit_only_while_empty(self):
        self.group.check_offset_commit("", None, -1)
        one, = self.form(1)
        self.assertRaises(UnknownMember, self.group.check_offset_commit, "", None, -1)
        self.group.check_offset_commit(one.member_id, None, 1)

    def test_commit_checks_member_and_generation(self):
        one, two = self.form(2)
        self.assertRaises(IllegalGeneration, self.group.check_offset_commit, one.member_id, None, 0)
        self.assertRaises(UnknownMember, self.group.check_offset_commit, "nobody", None, 1)
        # During a rebalance the current generation may still commit (as
        # consumers do when their partitions are revoked)...
        self.rejoin(one.member_id)
        self.group.check_offset_commit(two.member_id, None, 1)
        # ...but not once the new generation is being assigned.
        self.rejoin(two.member_id)
        self.assertRaises(RebalanceInProgress, self.group.check_offset_commit, one.member_id, None, 2)


class SnapshotTests(GroupTestCase):
    def test_restored_group_carries_on(self):
        one, two = self.form(2)
        snapshot = self.saved[-1]
        clock = task.Clock()
        restored = Group.restore("g", snapshot, clock, INITIAL_DELAY_MS, self.persist)
        self.assertIs(restored.state, GroupState.STABLE)
        self.assertEqual((restored.generation_id, restored.leader_id, restored.protocol_name),
                         (1, one.member_id, "range"))
        restored.heartbeat(one.member_id, None, 1)
        synced = self.successResultOf(restored.sync(two.member_id, None, 1, None, None, {}))
        self.assertEqual(synced.assignment, two.member_id.encode())
        summary = restored.describe()
        self.assertEqual([m.assignment for m in summary.members], [one.member_id.encode(), two.member_id.encode()])
        self.assertEqual(summary.members[0].client_host, "/127.0.0.1")
        # A member that never shows up again expires.
        clock.advance(SESSION_MS / 1000 / 2)
        restored.heartbeat(one.member_id, None, 1)
        clock.advance(SESSION_MS / 1000 / 2)
        self.assertEqual(list(restored.members), [one.member_id])

    def test_heartbeats_are_not_stored(self):
        one, = self.form(1)
        saves = len(self.saved)
        for _ in range(10):
            self.clock.advance(1)
            self.group.heartbeat(one.member_id, None, 1)
        self.assertEqual(len(self.saved), saves)

    def test_describe_shows_metadata_only_when_stable(self):
        one, = self.form(1)
        summary = self.group.describe()
        self.assertEqual((summary.state, summary.protocol_type, summary.protocol_name), ("Stable", "consumer", "range"))
        self.assertEqual(summary.members[0].metadata, b"r")
        self.rejoin(one.member_id)
        summary = self.group.describe()
        self.assertEqual((summary.state, summary.protocol_name, summary.members[0].metadata),
                         ("CompletingRebalance", "", b""))
