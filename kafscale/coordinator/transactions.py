"""The transaction coordinator: transactional ids, their producer ids and
epochs, and the two-phase end of each transaction.

A transactional id is coordinated by the broker holding its coordinator
slot (the slots the groups use, ``view.coordinates``), but its state lives
in the metadata store alone and every change is a compare-and-swap on the
version read (IMetadataStore.save_transaction): a deposed coordinator's
late write fails, so two brokers never both decide a transaction. Each
operation reads the state afresh; a transactional id's operations on this
broker run one at a time.

Ending a transaction first stores PrepareCommit or PrepareAbort (the
decision), then writes a marker to every partition of the transaction
through its owner's fenced commit path (``markers``), applies the
transaction's offsets when it commits, and stores CompleteCommit or
CompleteAbort. Whatever crashes in between, the state says what was
decided: the coordinator that holds the slot next finishes it (the periodic
check), and aborts a transaction left Ongoing past its timeout, bumping the
epoch so that the producer that left it is fenced.
"""

import time

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, FirstError, gatherResults
from twisted.internet.task import LoopingCall, deferLater

from kafscale.coordinator.errors import (
    ConcurrentTransactions,
    CoordinatorUnavailable,
    InvalidProducerIdMapping,
    InvalidTransactionTimeout,
    InvalidTxnState,
    NotCoordinator,
    ProducerFenced,
)
from kafscale.log import logger
from kafscale.metadata.interfaces import CommittedOffset, MetadataError, TransactionConflict
from kafscale.storage.producer_ids import ProducerIdGenerator

log = logger("kafscale.coordinator.transactions")

EMPTY = "Empty"
ONGOING = "Ongoing"
PREPARE_COMMIT = "PrepareCommit"
PREPARE_ABORT = "PrepareAbort"
COMPLETE_COMMIT = "CompleteCommit"
COMPLETE_ABORT = "CompleteAbort"
STATES = (EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT)

# Kafka counts an epoch of Short.MAX_VALUE - 1 as exhausted.
LAST_EPOCH = 0x7FFF - 1

_producer_ids = ProducerIdGenerator()


class TransactionCoordinator(Service):
    """Serves the transaction APIs for the transactional ids whose slots
    this broker holds.

    ``metadata`` keeps the states; ``view`` places the ids; ``markers`` (a
    MarkerWriter) writes the markers; ``max_timeout_ms`` bounds what a
    producer may ask for (Kafka's transaction.max.timeout.ms);
    ``check_interval_ms`` is how often timeouts and unfinished transactions
    are looked for; an id with no transaction under way whose state has not
    changed for ``expiration_ms`` is forgotten then (Kafka's
    transactional.id.expiration.ms). Every public coroutine raises a
    GroupError subclass saying why it refuses.
    """

    def __init__(self, metadata, view, markers, clock, *, max_timeout_ms=900_000, check_interval_ms=1000,
                 expiration_ms=604_800_000):
        self.metadata = metadata
        self.view = view
        self.markers = markers
        self.clock = clock
        self.max_timeout_ms = max_timeout_ms
        self.check_interval_ms = check_interval_ms
        self.expiration_ms = expiration_ms
        self._locks = {}
        self._checking = None

    def startService(self):
        super().startService()
        self._checking = LoopingCall(self._check)
        self._checking.clock = self.clock
        self._checking.start(self.check_interval_ms / 1000, now=False).addErrback(
            lambda failure: log.failure("transaction checks stopped", failure))

    def stopService(self):
        super().stopService()
        if self._checking is not None and self._checking.running:
            self._checking.stop()

    # -- helpers ---------------------------------------------------------

    def _now_ms(self):
        return int(self.clock.seconds() * 1000)

    def _check_coordinator(self, transactional_id):
        if self.view.coordinates(transactional_id):
            return
        if self.view.coordinator_for(transactional_id) is None:
            raise CoordinatorUnavailable()
        raise NotCoordinator()

    async def _locked(self, transactional_id, work):
        self._check_coordinator(transactional_id)
        lock = self._locks.get(transactional_id)
        if lock is None:
            lock = self._locks[transactional_id] = DeferredLock()
        await lock.acquire()
        try:
            return await work()
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(transactional_id, None)

    async def _load(self, transactional_id):
        try:
            return await self.metadata.load_transaction(transactional_id)
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None

    async def _save(self, transactional_id, state, version):
        """Store ``state`` over ``version``. -> the new version. Raises
        ConcurrentTransactions when someone else changed it meanwhile."""
        state = {**state, "updated_ms": int(time.time() * 1000)}
        try:
            return state, await self.metadata.save_transaction(transactional_id, state, version)
        except TransactionConflict:
            # A retried write of ours that had landed looks like a conflict.
            current = await self._load(transactional_id)
            if current is not None and current[0] == state:
                return current
            raise ConcurrentTransactions(f"transaction {transactional_id!r} changed meanwhile") from None
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None

    @staticmethod
    def _check_producer(state, producer_id, epoch):
        if state["producer_id"] != producer_id:
            raise InvalidProducerIdMapping(f"producer id {producer_id} is not the transactional id's")
        if epoch != state["producer_epoch"]:
            raise ProducerFenced(f"epoch {epoch} is not the current {state['producer_epoch']}")

    # -- InitProducerId ----------------------------------------------------

    async def init_producer_id(self, transactional_id, timeout_ms, producer_id=-1, epoch=-1):
        """-> (producer id, epoch) for a producer (re)starting with this
        transactional id: a fresh id, or the current one at the next epoch,
        after aborting (or finishing) its transaction under way."""
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeout(f"timeout {timeout_ms} ms outside 1..{self.max_timeout_ms}")

        async def work():
            loaded = await self._load(transactional_id)
            if loaded is None:
                state = {"producer_id": _producer_ids.next_id(self.view.node_id), "producer_epoch": 0,
                         "last_epoch": -1, "timeout_ms": timeout_ms, "state": EMPTY, "partitions": [],
                         "groups": [], "offsets": {}, "started_ms": -1}
                state, _ = await self._save(transactional_id, state, 0)
                return state["producer_id"], state["producer_epoch"]
            state, version = loaded
            if producer_id != -1:
                # KIP-360: a producer bumping its own epoch must be the current one
                # (or the one whose transaction timed out).
                if producer_id != state["producer_id"] or epoch not in (state["producer_epoch"], state["last_epoch"]):
                    raise ProducerFenced(f"producer {producer_id} epoch {epoch} is not the current one")
            if state["state"] == ONGOING:
                state, version = await self._prepare(transactional_id, state, version, commit=False, fence=True)
            if state["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
                state, version = await self._complete(transactional_id, state, version)
            if state["producer_epoch"] >= LAST_EPOCH:
                new_id, new_epoch = _producer_ids.next_id(self.view.node_id), 0
            else:
                new_id, new_epoch = state["producer_id"], state["producer_epoch"] + 1
            state = {**state, "producer_id": new_id, "producer_epoch": new_epoch, "last_epoch": -1,
                     "timeout_ms": timeout_ms, "state": EMPTY, "partitions": [], "groups": [], "offsets": {}}
            state, _ = await self._save(transactional_id, state, version)
            return new_id, new_epoch

        return await self._locked(transactional_id, work)

    # -- AddPartitionsToTxn, AddOffsetsToTxn ----------------------------------

    async def add_partitions(self, transactional_id, producer_id, epoch, partitions):
        """Add ``partitions`` [(topic, partition)] to the producer's
        transaction, starting one if none is under way."""
        partitions = [list(p) for p in partitions]

        async def work():
            state, version = await self._ongoing_or_new(transactional_id, producer_id, epoch)
            known = state["partitions"]
            added = [p for p in partitions if p not in known]
            if added or state["state"] != ONGOING:
                state = {**state, "state": ONGOING, "partitions": known + added}
                await self._save(transactional_id, state, version)

        await self._locked(transactional_id, work)

    async def add_offsets(self, transactional_id, producer_id, epoch, group_id):
        """Add the group's offsets to the producer's transaction."""

        async def work():
            state, version = await self._ongoing_or_new(transactional_id, producer_id, epoch)
            if group_id not in state["groups"] or state["state"] != ONGOING:
                groups = state["groups"] + ([group_id] if group_id not in state["groups"] else [])
                await self._save(transactional_id, {**state, "state": ONGOING, "groups": groups}, version)

        await self._locked(transactional_id, work)

    async def _ongoing_or_new(self, transactional_id, producer_id, epoch):
        loaded = await self._load(transactional_id)
        if loaded is None:
            raise InvalidProducerIdMapping(f"no producer for transactional id {transactional_id!r}")
        state, version = loaded
        self._check_producer(state, producer_id, epoch)
        if state["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
            raise ConcurrentTransactions("the previous transaction is still completing")
        if state["state"] != ONGOING:
            state = {**state, "partitions": [], "groups": [], "offsets": {}, "started_ms": self._now_ms()}
        return state, version

    async def verify(self, transactional_id, producer_id, epoch, partitions):
        """-> {(topic, partition): bool}: whether each is in the producer's
        ongoing transaction (KIP-890). Any broker may ask: the state is read
        from the store. Raises ProducerFenced for an epoch older than the
        current one."""
        loaded = await self._load(transactional_id)
        if loaded is not None and loaded[0]["producer_id"] == producer_id and epoch < loaded[0]["producer_epoch"]:
            raise ProducerFenced(f"epoch {epoch} is older than the current {loaded[0]['producer_epoch']}")
        ongoing = (loaded is not None and loaded[0]["state"] == ONGOING
                   and loaded[0]["producer_id"] == producer_id and loaded[0]["producer_epoch"] == epoch)
        held = {tuple(p) for p in loaded[0]["partitions"]} if ongoing else set()
        return {p: tuple(p) in held for p in partitions}

    async def commit_offsets(self, transactional_id, producer_id, epoch, group_id, offsets):
        """TxnOffsetCommit: keep ``offsets`` ({(topic, partition):
        CommittedOffset}) in the producer's ongoing transaction, to be
        committed with it. Any broker may do this (the group's coordinator
        does): a compare-and-swap on the transaction's state keeps it from
        racing the transaction's end."""
        for _ in range(5):
            loaded = await self._load(transactional_id)
            if loaded is None:
                raise InvalidProducerIdMapping(f"no producer for transactional id {transactional_id!r}")
            state, version = loaded
            self._check_producer(state, producer_id, epoch)
            if state["state"] != ONGOING or group_id not in state["groups"]:
                raise InvalidTxnState(f"group {group_id!r} is not in an ongoing transaction")
            pending = dict(state["offsets"])
            entries = {(t, p): e for t, p, *e in pending.get(group_id, [])}
            for (topic, partition), committed in offsets.items():
                entries[topic, partition] = [committed.offset, committed.leader_epoch, committed.metadata,
                                             committed.commit_ms]
            pending[group_id] = [[t, p, *e] for (t, p), e in sorted(entries.items())]
            try:
                await self._save(transactional_id, {**state, "offsets": pending}, version)
                return
            except ConcurrentTransactions:
                continue
        raise ConcurrentTransactions("the transaction kept changing")

    # -- EndTxn --------------------------------------------------------------

    async def end_transaction(self, transactional_id, producer_id, epoch, commit):
        """Commit or abort the producer's transaction; -> once every marker
        is written and the outcome stored."""

        async def work():
            loaded = await self._load(transactional_id)
            if loaded is None:
                raise InvalidProducerIdMapping(f"no producer for transactional id {transactional_id!r}")
            state, version = loaded
            self._check_producer(state, producer_id, epoch)
            current = state["state"]
            done, preparing = (COMPLETE_COMMIT, PREPARE_COMMIT) if commit else (COMPLETE_ABORT, PREPARE_ABORT)
            if current == done:
                return  # a retry of an end already made
            if current == preparing:
                await self._complete(transactional_id, state, version)
                return
            if current != ONGOING:
                raise InvalidTxnState(f"cannot {'commit' if commit else 'abort'} a transaction in state {current}")
            state, version = await self._prepare(transactional_id, state, version, commit=commit)
            await self._complete(transactional_id, state, version)

        await self._locked(transactional_id, work)

    async def _prepare(self, transactional_id, state, version, commit, fence=False):
        """Store the decision. ``fence``: abort under the next epoch, so
        that the producer that left the transaction is refused from now on."""
        changes = {"state": PREPARE_COMMIT if commit else PREPARE_ABORT}
        if fence:
            changes.update(last_epoch=state["producer_epoch"], producer_epoch=state["producer_epoch"] + 1)
        return await self._save(transactional_id, {**state, **changes}, version)

    async def _complete(self, transactional_id, state, version):
        """Write the markers of a prepared transaction, apply its offsets if
        it commits, and store its outcome. -> (state, version)."""
        commit = state["state"] == PREPARE_COMMIT
        try:
            await gatherResults([
                Deferred.fromCoroutine(self._write_marker(transactional_id, topic, partition, state, commit))
                for topic, partition in state["partitions"]
            ], consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()
        if commit:
            for group_id, entries in state["offsets"].items():
                offsets = {(t, p): CommittedOffset(*e) for t, p, *e in entries}
                try:
                    await self.metadata.commit_offsets(group_id, offsets)
                except MetadataError as e:
                    raise CoordinatorUnavailable(str(e)) from None
        done = {**state, "state": COMPLETE_COMMIT if commit else COMPLETE_ABORT,
                "partitions": [], "groups": [], "offsets": {}}
        log.info("transaction {id} {outcome}", id=transactional_id, outcome=done["state"])
        return await self._save(transactional_id, done, version)

    async def _write_marker(self, transactional_id, topic, partition, state, commit):
        delay = 0.05
        while True:
            if not self.running or not self.view.coordinates(transactional_id):
                # The next coordinator finishes the transaction.
                raise NotCoordinator()
            written = await self.markers.write(topic, partition, state["producer_id"], state["producer_epoch"],
                                               commit)
            if written:
                return
            await deferLater(self.clock, delay)
            delay = min(delay * 2, 1.0)

    # -- timeouts and unfinished transactions ---------------------------------

    async def _check(self):
        """Abort the transactions of this broker's ids that outlived their
        timeout; finish those a crashed coordinator left prepared; forget
        the ids idle past their expiration."""
        try:
            every = await self.metadata.transactions()
        except MetadataError as e:
            log.warn("cannot list transactions: {error}", error=e)
            return
        now_ms = self._now_ms()
        for transactional_id, (state, _) in every.items():
            if not self.view.coordinates(transactional_id) or transactional_id in self._locks:
                continue
            expired = state["state"] == ONGOING and state["started_ms"] + state["timeout_ms"] < now_ms
            if expired or state["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
                Deferred.fromCoroutine(self._finish(transactional_id)).addErrback(
                    lambda failure, tid=transactional_id: log.warn(
                        "transaction {id} not finished yet: {error}", id=tid, error=failure.value))
            elif self._idle_past_expiration(state):
                Deferred.fromCoroutine(self._expire(transactional_id)).addErrback(
                    lambda failure, tid=transactional_id: log.warn(
                        "transactional id {id} not forgotten yet: {error}", id=tid, error=failure.value))

    def _idle_past_expiration(self, state):
        # updated_ms is wall time, as _save stamps it.
        return (state["state"] in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)
                and state.get("updated_ms", 0) + self.expiration_ms < int(time.time() * 1000))

    async def _expire(self, transactional_id):
        async def work():
            loaded = await self._load(transactional_id)
            if loaded is None or not self._idle_past_expiration(loaded[0]):
                return
            try:
                forgotten = await self.metadata.delete_transaction(transactional_id, loaded[1])
            except MetadataError as e:
                raise CoordinatorUnavailable(str(e)) from None
            if forgotten:
                log.info("transactional id {id} expired: forgotten", id=transactional_id)

        await self._locked(transactional_id, work)

    async def _finish(self, transactional_id):
        async def work():
            loaded = await self._load(transactional_id)
            if loaded is None:
                return
            state, version = loaded
            if state["state"] == ONGOING:
                if state["started_ms"] + state["timeout_ms"] >= self._now_ms():
                    return
                log.info("transaction {id} timed out: aborting it", id=transactional_id)
                state, version = await self._prepare(transactional_id, state, version, commit=False, fence=True)
            if state["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
                await self._complete(transactional_id, state, version)

        await self._locked(transactional_id, work)

    # -- admin -----------------------------------------------------------------

    async def describe(self, transactional_id):
        """-> the state dict, or None."""
        self._check_coordinator(transactional_id)
        loaded = await self._load(transactional_id)
        return None if loaded is None else loaded[0]

    async def all(self):
        """-> {transactional id: state dict}."""
        try:
            return {tid: state for tid, (state, _) in (await self.metadata.transactions()).items()}
        except MetadataError as e:
            raise CoordinatorUnavailable(str(e)) from None
