"""One consumer group run by Kafka's classic rebalance protocol: its state
machine, its members' session timers, and the JoinGroup and SyncGroup
requests waiting for a rebalance to finish.

Everything here runs on the reactor thread and changes state synchronously;
the only waits are the answers handed out as Deferreds and the writes of the
group's state through ``persist``.
"""

import base64
import enum
import struct
import uuid
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, fail, succeed

from kafscale.log import logger
from kafscale.coordinator.errors import (
    CoordinatorUnavailable,
    FencedInstance,
    GroupError,
    IllegalGeneration,
    InconsistentProtocol,
    MemberIdRequired,
    RebalanceInProgress,
    UnknownMember,
)

log = logger("kafscale.coordinator")


class GroupState(enum.Enum):
    """Kafka's classic group states; the values are the names clients see."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class JoinRequest:
    member_id: str
    """Empty for a member joining for the first time."""
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    """(name, metadata) in the member's order of preference."""
    require_known_member_id: bool
    """JoinGroup v4+: a new member gets an id with MEMBER_ID_REQUIRED and
    must join again with it."""


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The answer to one JoinGroup. ``members`` (member id, group instance
    id, metadata of the chosen protocol) goes to the leader only.

    ``skip_assignment`` tells a static leader that rejoined a stable group to
    keep the current assignment; clients older than JoinGroup v9 cannot read
    it, so they are named a follower instead, with ``previous_leader_id``."""

    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False
    previous_leader_id: str = ""


@dataclass(frozen=True, slots=True)
class SyncResult:
    protocol_type: str | None
    protocol_name: str | None
    assignment: bytes


@dataclass(frozen=True, slots=True)
class MemberSummary:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What DescribeGroups shows: metadata and assignments only when Stable,
    as Kafka does."""

    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    members: tuple[MemberSummary, ...]


@dataclass(eq=False, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    """(name, metadata) in the member's order of preference."""
    assignment: bytes = b""
    joining: Deferred | None = None
    """The member's JoinGroup, waiting for the rebalance to complete."""
    syncing: Deferred | None = None
    """The member's SyncGroup, waiting for the leader's assignment."""
    session: object = field(default=None)
    """The IDelayedCall that expires the member."""

    def metadata(self, protocol):
        return next(metadata for name, metadata in self.protocols if name == protocol)


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def _subscription_topics(metadata):
    """The topics of a ConsumerProtocolSubscription (every version starts
    with its version, then the topics as an array of strings)."""
    position = _INT16.size
    (count,) = _INT32.unpack_from(metadata, position)
    position += _INT32.size
    if count < 0:
        raise ValueError("no topic array")
    topics = []
    for _ in range(count):
        (length,) = _INT16.unpack_from(metadata, position)
        position += _INT16.size
        if length < 0 or position + length > len(metadata):
            raise ValueError("topic name past the subscription's end")
        topics.append(bytes(metadata[position:position + length]).decode("utf-8"))
        position += length
    return topics


def _encode(data):
    return base64.b64encode(data).decode("ascii")


def _decode(text):
    return base64.b64decode(text)


class Group:
    """A consumer group's membership and rebalances.

    ``rebalanced()``, if given, is called each time a rebalance completes
    (a generation begins). ``persist(group_id, snapshot)`` writes the group's state and returns a
    Deferred; it is called when a generation's assignment is complete, when
    the group becomes empty and when a static member is replaced, never on
    heartbeats. Its failures carry a GroupError for the members.

    Methods raise GroupError for requests answered at once with an error;
    the Deferreds they return fail with GroupError when a waiting request
    ends in an error (say, the member was removed while it waited).
    """

    def __init__(self, group_id, clock, initial_rebalance_delay_ms, persist, rebalanced=None):
        self.group_id = group_id
        self._rebalanced = rebalanced
        self.state = GroupState.EMPTY
        self.generation_id = 0
        self.protocol_type = None
        self.protocol_name = None
        self.leader_id = None
        self.members = {}  # member id -> Member, in the order they joined
        self.static_members = {}  # group instance id -> member id
        self.pending_members = {}  # member id handed out with MEMBER_ID_REQUIRED -> its expiry
        self.awaiting_sync = set()  # members of this generation yet to send SyncGroup
        self._clock = clock
        self._initial_delay_ms = initial_rebalance_delay_ms
        self._persist = persist
        self._rebalance_timer = None
        self._sync_timer = None
        # While the first join into an empty group waits: what is left of
        # the rebalance timeout, and whether anyone joined during the delay.
        self._initial_join_remaining_ms = None
        self._new_member_added = False

    # -- JoinGroup -----------------------------------------------------

    def join(self, request):
        """Handle a JoinRequest. -> Deferred firing with a JoinResult once
        the rebalance completes (at once for a member that may keep its
        generation), or failing at once with MemberIdRequired."""
        if self.state is GroupState.DEAD:
            raise CoordinatorUnavailable("the group is being removed")
        if not self._supports(request.protocol_type, request.protocols):
            raise InconsistentProtocol()
        if request.member_id == "":
            joined = self._join_new_member(request)
        else:
            joined = self._join_known_member(request)
        self._try_complete_join()
        return joined

    def _join_new_member(self, request):
        member_id = f"{request.group_instance_id or request.client_id}-{uuid.uuid4()}"
        if request.group_instance_id is not None:
            known = self.static_members.get(request.group_instance_id)
            if known is not None:
                return self._replace_static_member(self.members[known], member_id, request)
        elif request.require_known_member_id:
            # The client must come back with this id; one that never does
            # leaves nothing behind but this entry, for a session timeout.
            self.pending_members[member_id] = self._clock.callLater(
                request.session_timeout_ms / 1000, self._expire_pending_member, member_id
            )
            return fail(MemberIdRequired(member_id))
        return self._add_member(member_id, request)

    def _join_known_member(self, request):
        member_id = request.member_id
        if member_id in self.pending_members:
            self.pending_members.pop(member_id).cancel()
            return self._add_member(member_id, request)
        self._check_member(member_id, request.group_instance_id)
        if request.group_instance_id is not None and request.group_instance_id not in self.static_members:
            raise UnknownMember()
        member = self.members[member_id]
        if self.state is GroupState.PREPARING_REBALANCE:
            return self._update_member(member, request, "member rejoined")
        if self.state is GroupState.COMPLETING_REBALANCE:
            if member.protocols == request.protocols:
                # It missed the JoinGroup answer: give it again.
                return succeed(self._join_result(member))
            return self._update_member(member, request, "member changed its protocols")
        if self.state is GroupState.STABLE:
            if member_id == self.leader_id:
                # The leader rejoins when something affecting the assignment
                # changed that the members' metadata does not show.
                return self._update_member(member, request, "the leader rejoined")
            if member.protocols != request.protocols:
                return self._update_member(member, request, "member changed its protocols")
            return succeed(self._join_result(member))
        raise UnknownMember()

    def _add_member(self, member_id, request):
        member = Member(
            member_id, request.group_instance_id, request.client_id, request.client_host,
            request.session_timeout_ms, request.rebalance_timeout_ms, request.protocols,
        )
        if not self.members:
            self.protocol_type = request.protocol_type
        self.members[member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member_id
        if self.leader_id is None:
            self.leader_id = member_id
        joined = self._await_join(member)
        self._touch(member)
        if self._initial_join_remaining_ms is not None:
            self._new_member_added = True
        self._maybe_prepare_rebalance(f"member {member_id} joined")
        return joined

    def _update_member(self, member, request, reason):
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.protocols = request.protocols
        joined = self._await_join(member)
        self._maybe_prepare_rebalance(f"{reason} ({member.member_id})")
        return joined

    def _replace_static_member(self, member, new_member_id, request):
        """A static member came back under a new member id: fence the old
        id, and keep the assignment without a rebalance when the group is
        Stable and its protocol would not change."""
        self._answer_join(member, error=FencedInstance())
        self._answer_sync(member, error=FencedInstance())
        old_member_id, old_protocols, previous_leader_id = member.member_id, member.protocols, self.leader_id
        self._rename(member, new_member_id)
        self._touch(member)
        if self.state is GroupState.STABLE:
            member.protocols = request.protocols
            if self._select_protocol() == self.protocol_name:
                member.session_timeout_ms = request.session_timeout_ms
                member.rebalance_timeout_ms = request.rebalance_timeout_ms
                return self._persist_replacement(member, old_member_id, old_protocols, previous_leader_id)
        # In CompletingRebalance the leader may be assigning to the old
        # member id: this starts over.
        return self._update_member(member, request, f"static member {member.group_instance_id} rejoined")

    def _persist_replacement(self, member, old_member_id, old_protocols, previous_leader_id):
        generation_id = self.generation_id
        joined = Deferred()

        def persisted(_):
            is_leader = member.member_id == self.leader_id
            joined.callback(JoinResult(
                member.member_id, generation_id, self.protocol_type, self.protocol_name,
                self.leader_id or "", self._leader_view() if is_leader else (),
                skip_assignment=is_leader, previous_leader_id=previous_leader_id or "",
            ))

        def failed(failure):
            # Undo: the old member id stays valid, the new one was never given out.
            if self.members.get(member.member_id) is member:
                self._rename(member, old_member_id)
                member.protocols = old_protocols
            joined.errback(failure)

        self._persist(self.group_id, self.snapshot()).addCallbacks(persisted, failed)
        return joined

    def _rename(self, member, new_member_id):
        old_member_id = member.member_id
        del self.members[old_member_id]
        member.member_id = new_member_id
        self.members[new_member_id] = member
        self.static_members[member.group_instance_id] = new_member_id
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        if old_member_id in self.awaiting_sync:
            self.awaiting_sync.discard(old_member_id)
            self.awaiting_sync.add(new_member_id)

    def _await_join(self, member):
        if member.joining is not None:
            # A client whose JoinGroup timed out sent another: answer the
            # first so its connection is not held up.
            self._answer_join(member, error=RebalanceInProgress())
        member.joining = Deferred()
        return member.joining

    def _join_result(self, member):
        is_leader = member.member_id == self.leader_id
        return JoinResult(
            member.member_id, self.generation_id, self.protocol_type, self.protocol_name,
            self.leader_id or "", self._leader_view() if is_leader else (),
        )

    def _leader_view(self):
        return tuple(
            (m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()
        )

    def _supports(self, protocol_type, protocols):
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        return protocol_type == self.protocol_type and bool(
            self._candidate_protocols() & {name for name, _ in protocols}
        )

    def _candidate_protocols(self):
        members = iter(self.members.values())
        candidates = {name for name, _ in next(members).protocols}
        for member in members:
            candidates &= {name for name, _ in member.protocols}
        return candidates

    def _select_protocol(self):
        """Each member votes for the first protocol it prefers among those
        every member supports; the most votes win, ties going to the
        earliest vote."""
        candidates = self._candidate_protocols()
        votes = {}
        for member in self.members.values():
            choice = next(name for name, _ in member.protocols if name in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=votes.get)

    # -- rebalances ----------------------------------------------------

    @property
    def rebalance_timeout_ms(self):
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _maybe_prepare_rebalance(self, reason):
        if self.state in (GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(reason)

    def _prepare_rebalance(self, reason):
        if self.state is GroupState.COMPLETING_REBALANCE:
            self._fail_assignment(RebalanceInProgress())
        self._cancel_sync_timer()
        self._cancel_rebalance_timer()
        log.info("group {group} rebalancing from generation {generation} ({state}): {reason}",
                 group=self.group_id, generation=self.generation_id, state=self.state.value, reason=reason)
        if self.state is GroupState.EMPTY:
            # Like Kafka's initial delayed join: give the other members of a
            # group that is starting up the time to arrive, so that the
            # first generation is not followed at once by another.
            delay_ms = self._initial_delay_ms
            self._initial_join_remaining_ms = max(self.rebalance_timeout_ms - delay_ms, 0)
            self._new_member_added = False
            self._rebalance_timer = self._clock.callLater(delay_ms / 1000, self._initial_delay_over)
        else:
            self._rebalance_timer = self._clock.callLater(self.rebalance_timeout_ms / 1000, self._complete_join)
        self.state = GroupState.PREPARING_REBALANCE
        self._try_complete_join()

    def _initial_delay_over(self):
        self._rebalance_timer = None
        remaining_ms = self._initial_join_remaining_ms
        if self._new_member_added and remaining_ms > 0:
            self._new_member_added = False
            delay_ms = min(self._initial_delay_ms, remaining_ms)
            self._initial_join_remaining_ms = remaining_ms - delay_ms
            self._rebalance_timer = self._clock.callLater(delay_ms / 1000, self._initial_delay_over)
        else:
            self._complete_join()

    def _all_members_joined(self):
        return not self.pending_members and all(m.joining is not None for m in self.members.values())

    def _try_complete_join(self):
        if (
            self.state is GroupState.PREPARING_REBALANCE
            and self._initial_join_remaining_ms is None
            and self._all_members_joined()
        ):
            self._complete_join()

    def _complete_join(self):
        self._cancel_rebalance_timer()
        self._initial_join_remaining_ms = None
        # Dynamic members that did not rejoin in time are gone; static ones
        # keep their place until their session expires.
        for member in list(self.members.values()):
            if member.joining is None and member.group_instance_id is None:
                self._remove(member)
        if self.members and not self._elect_joined_leader():
            # Only absent static members are left: wait for them to rejoin
            # or for their sessions to end.
            self._rebalance_timer = self._clock.callLater(self.rebalance_timeout_ms / 1000, self._complete_join)
            return
        self.generation_id += 1
        if self._rebalanced is not None:
            self._rebalanced()
        if not self.members:
            self.state = GroupState.EMPTY
            self.protocol_name = None
            self.leader_id = None
            log.info("group {group} is empty at generation {generation}",
                     group=self.group_id, generation=self.generation_id)
            self._persist(self.group_id, self.snapshot()).addErrback(self._log_persist_failure)
            return
        self.protocol_name = self._select_protocol()
        self.state = GroupState.COMPLETING_REBALANCE
        log.info("group {group} generation {generation}: {count} members, protocol {protocol}",
                 group=self.group_id, generation=self.generation_id, count=len(self.members),
                 protocol=self.protocol_name)
        self.awaiting_sync = set(self.members)
        for member in list(self.members.values()):
            if member.joining is not None:
                joining, member.joining = member.joining, None
                joining.callback(self._join_result(member))
            self._touch(member)
        self._sync_timer = self._clock.callLater(
            self.rebalance_timeout_ms / 1000, self._sync_expired, self.generation_id
        )

    def _elect_joined_leader(self):
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.joining is not None:
            return True
        rejoined = next((m for m in self.members.values() if m.joining is not None), None)
        if rejoined is None:
            return False
        self.leader_id = rejoined.member_id
        return True

    def _sync_expired(self, generation_id):
        self._sync_timer = None
        if generation_id != self.generation_id or self.state not in (
            GroupState.COMPLETING_REBALANCE, GroupState.STABLE,
        ):
            return
        late = [self.members[member_id] for member_id in self.awaiting_sync if member_id in self.members]
        for member in late:
            self._remove(member)
        self._prepare_rebalance(f"members {sorted(m.member_id for m in late)} sent no SyncGroup in time")

    # -- SyncGroup -----------------------------------------------------

    def sync(self, member_id, group_instance_id, generation_id, protocol_type, protocol_name, assignments):
        """``assignments`` (member id -> bytes) counts only from the leader.
        -> Deferred firing with a SyncResult once the leader's assignment is
        stored."""
        if self.state is GroupState.DEAD:
            raise CoordinatorUnavailable("the group is being removed")
        self._check_member(member_id, group_instance_id)
        if generation_id != self.generation_id:
            raise IllegalGeneration()
        if (protocol_type is not None and protocol_type != self.protocol_type) or (
            protocol_name is not None and protocol_name != self.protocol_name
        ):
            raise InconsistentProtocol()
        if self.state is GroupState.EMPTY:
            raise UnknownMember()
        if self.state is GroupState.PREPARING_REBALANCE:
            raise RebalanceInProgress()
        member = self.members[member_id]
        self._synced(member_id)
        if self.state is GroupState.STABLE:
            self._touch(member)
            return succeed(SyncResult(self.protocol_type, self.protocol_name, member.assignment))
        if member.syncing is not None:
            self._answer_sync(member, error=RebalanceInProgress())
        member.syncing = syncing = Deferred()
        if member_id == self.leader_id:
            self._assign(assignments)
        return syncing

    def _synced(self, member_id):
        self.awaiting_sync.discard(member_id)
        if not self.awaiting_sync:
            self._cancel_sync_timer()

    def _assign(self, assignments):
        """Take the leader's assignment as sent; store it, then hand it out."""
        for member in self.members.values():
            member.assignment = assignments.get(member.member_id, b"")
        generation_id = self.generation_id

        def persisted(_):
            if self.state is GroupState.COMPLETING_REBALANCE and self.generation_id == generation_id:
                self.state = GroupState.STABLE
                # Answering a request runs its handler, which may change
                # the membership: iterate over a copy.
                for member in list(self.members.values()):
                    self._answer_sync(member, result=SyncResult(
                        self.protocol_type, self.protocol_name, member.assignment
                    ))
                    self._touch(member)

        def failed(failure):
            failure.trap(GroupError)
            if self.state is GroupState.COMPLETING_REBALANCE and self.generation_id == generation_id:
                log.warn("group {group} generation {generation}: storing the assignment failed: {error}",
                         group=self.group_id, generation=generation_id, error=failure.value)
                self._fail_assignment(failure.value)
                self._prepare_rebalance("storing the assignment failed")

        self._persist(self.group_id, self.snapshot()).addCallbacks(persisted, failed).addErrback(
            self._log_persist_failure
        )

    def _fail_assignment(self, error):
        for member in list(self.members.values()):
            member.assignment = b""
            self._answer_sync(member, error=error)

    # -- Heartbeat, LeaveGroup, OffsetCommit ----------------------------

    def heartbeat(self, member_id, group_instance_id, generation_id):
        """Keep the member alive. Raises GroupError: RebalanceInProgress
        tells it to rejoin."""
        if self.state is GroupState.DEAD:
            raise CoordinatorUnavailable("the group is being removed")
        self._check_member(member_id, group_instance_id)
        if generation_id != self.generation_id:
            raise IllegalGeneration()
        if self.state is GroupState.EMPTY:
            raise UnknownMember()
        self._touch(self.members[member_id])
        if self.state is GroupState.PREPARING_REBALANCE:
            raise RebalanceInProgress()

    def leave(self, leaving):
        """Remove members given as (member id, group instance id) pairs; a
        static member may be named by its instance id alone.
        -> for each, in order, None or the GroupError refusing it."""
        if self.state is GroupState.DEAD:
            raise CoordinatorUnavailable("the group is being removed")
        return [self._leave(member_id, group_instance_id) for member_id, group_instance_id in leaving]

    def _leave(self, member_id, group_instance_id):
        if member_id == "" and group_instance_id is not None:
            member_id = self.static_members.get(group_instance_id)
            if member_id is None:
                return UnknownMember()
        elif self._fenced(member_id, group_instance_id):
            return FencedInstance()
        elif member_id in self.pending_members:
            self.pending_members.pop(member_id).cancel()
            self._try_complete_join()
            return None
        member = self.members.get(member_id)
        if member is None:
            return UnknownMember()
        self._remove_and_rebalance(member, f"member {member_id} left")
        return None

    def check_offset_commit(self, member_id, group_instance_id, generation_id):
        """Raise GroupError unless this commit may be stored: a member's
        commit in its generation, or a commit outside group management
        (generation -1) while the group is empty. Counts as a heartbeat."""
        self.check_txn_offset_commit(member_id, group_instance_id, generation_id)
        if generation_id < 0 and self.state is GroupState.EMPTY:
            return
        if self.state is GroupState.COMPLETING_REBALANCE:
            raise RebalanceInProgress()
        if member_id not in self.members:
            raise UnknownMember()
        if generation_id != self.generation_id:
            raise IllegalGeneration()
        self._touch(self.members[member_id])

    def check_txn_offset_commit(self, member_id, group_instance_id, generation_id):
        """Raise GroupError unless a transaction's offsets read by
        ``member_id`` in ``generation_id`` may join it (KIP-447): unlike
        OffsetCommit, neither a member nor a settled group is required; a
        member or generation that is named must be the group's."""
        if self.state is GroupState.DEAD:
            raise CoordinatorUnavailable("the group is being removed")
        if self._fenced(member_id, group_instance_id):
            raise FencedInstance()
        if member_id and member_id not in self.members:
            raise UnknownMember()
        if generation_id >= 0 and generation_id != self.generation_id:
            raise IllegalGeneration()

    # -- members -------------------------------------------------------

    def _fenced(self, member_id, group_instance_id):
        if group_instance_id is None:
            return False
        known = self.static_members.get(group_instance_id)
        return known is not None and known != member_id

    def _check_member(self, member_id, group_instance_id):
        if self._fenced(member_id, group_instance_id):
            raise FencedInstance()
        if member_id not in self.members:
            raise UnknownMember()

    def _touch(self, member):
        """(Re)start the member's session timer."""
        seconds = member.session_timeout_ms / 1000
        if member.session is not None and member.session.active():
            member.session.reset(seconds)
        else:
            member.session = self._clock.callLater(seconds, self._session_expired, member)

    def _session_expired(self, member):
        member.session = None
        if self.members.get(member.member_id) is not member:
            return
        if member.joining is not None or member.syncing is not None:
            # Waiting on the group, not the other way round.
            self._touch(member)
            return
        self._remove_and_rebalance(member, f"member {member.member_id} session timed out")

    def _expire_pending_member(self, member_id):
        del self.pending_members[member_id]
        self._try_complete_join()

    def _remove_and_rebalance(self, member, reason):
        self._answer_join(member, error=UnknownMember())
        self._answer_sync(member, error=UnknownMember())
        self._remove(member)
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(reason)
        else:
            self._try_complete_join()

    def _remove(self, member):
        if member.session is not None and member.session.active():
            member.session.cancel()
        member.session = None
        del self.members[member.member_id]
        instance_id = member.group_instance_id
        if instance_id is not None and self.static_members.get(instance_id) == member.member_id:
            del self.static_members[instance_id]
        self.awaiting_sync.discard(member.member_id)
        if self.leader_id == member.member_id:
            self.leader_id = next(iter(self.members), None)

    def _answer_join(self, member, error):
        if member.joining is not None:
            joining, member.joining = member.joining, None
            joining.errback(error)

    def _answer_sync(self, member, result=None, error=None):
        if member.syncing is not None:
            syncing, member.syncing = member.syncing, None
            if error is None:
                syncing.callback(result)
            else:
                syncing.errback(error)

    # -- the group as a whole -------------------------------------------

    def describe(self):
        stable = self.state is GroupState.STABLE
        return GroupSummary(
            self.group_id,
            self.state.value,
            self.protocol_type or "",
            self.protocol_name if stable else "",
            tuple(
                MemberSummary(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host,
                    m.metadata(self.protocol_name) if stable else b"",
                    m.assignment if stable else b"",
                )
                for m in self.members.values()
            ),
        )

    def subscribed_topics(self):
        """The topics the members of a consumer group subscribe to, by the
        subscriptions they joined with; None when not known (not a consumer
        group, no protocol chosen yet, or a subscription that does not
        decode), which Kafka takes as every topic."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics = set()
        for member in self.members.values():
            try:
                topics.update(_subscription_topics(member.metadata(self.protocol_name)))
            except (StopIteration, ValueError, struct.error):
                return None
        return topics

    def close(self, error):
        """Stop the group: cancel its timers and answer every waiting
        request with ``error`` (a GroupError). The group is Dead afterwards."""
        self._cancel_rebalance_timer()
        self._cancel_sync_timer()
        for expiry in self.pending_members.values():
            expiry.cancel()
        self.pending_members.clear()
        self.state = GroupState.DEAD
        for member in list(self.members.values()):
            if member.session is not None and member.session.active():
                member.session.cancel()
            member.session = None
            self._answer_join(member, error=error)
            self._answer_sync(member, error=error)

    def snapshot(self):
        """The group's state as stored: JSON-able, bytes in base64."""
        return {
            "protocol_type": self.protocol_type,
            "protocol_name": self.protocol_name,
            "generation_id": self.generation_id,
            "leader_id": self.leader_id,
            "members": [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "session_timeout_ms": m.session_timeout_ms,
                    "rebalance_timeout_ms": m.rebalance_timeout_ms,
                    "protocols": [[name, _encode(metadata)] for name, metadata in m.protocols],
                    "assignment": _encode(m.assignment),
                }
                for m in self.members.values()
            ],
        }

    @classmethod
    def restore(cls, group_id, snapshot, clock, initial_rebalance_delay_ms, persist, rebalanced=None):
        """A group from its stored state: Stable with the stored members and
        assignments (each with a fresh session, so live members can go on
        or rejoin), or Empty."""
        group = cls(group_id, clock, initial_rebalance_delay_ms, persist, rebalanced)
        group.protocol_type = snapshot["protocol_type"]
        group.generation_id = snapshot["generation_id"]
        for stored in snapshot["members"]:
            member = Member(
                stored["member_id"], stored["group_instance_id"], stored["client_id"], stored["client_host"],
                stored["session_timeout_ms"], stored["rebalance_timeout_ms"],
                [(name, _decode(metadata)) for name, metadata in stored["protocols"]],
                _decode(stored["assignment"]),
            )
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
            group._touch(member)
        if group.members:
            group.state = GroupState.STABLE
            group.protocol_name = snapshot["protocol_name"]
            group.leader_id = snapshot["leader_id"]
        return group

    def _cancel_rebalance_timer(self):
        if self._rebalance_timer is not None and self._rebalance_timer.active():
            self._rebalance_timer.cancel()
        self._rebalance_timer = None

    def _cancel_sync_timer(self):
        if self._sync_timer is not None and self._sync_timer.active():
            self._sync_timer.cancel()
        self._sync_timer = None

    def _log_persist_failure(self, failure):
        if failure.check(GroupError):
            # The store is unavailable or the group moved: expected, and
            # the members hear of it on their next request.
            log.warn("group {group}: its state was not stored: {error}", group=self.group_id, error=failure.value)
        else:
            log.failure("group {group}: storing its state failed", failure, group=self.group_id)
