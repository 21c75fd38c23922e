"""What every IMetadataStore must do, as trial tests any backend can reuse.

Mix `MetadataStoreContract` into a `twisted.trial.unittest.TestCase` that
defines ``async def make_store(self)``: it returns a started store over this
test's backing data, which every call within one test shares (a second
store stands for a second broker, or the admin CLI, or the same broker after
a restart), and stops the store at cleanup unless the test already did.
"""

from dataclasses import replace

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from zope.interface.verify import verifyObject

from kafscale.metadata.interfaces import (
    BrokerInfo,
    CommittedOffset,
    Fenced,
    IMetadataStore,
    IScramCredentialStore,
    ScramCredential,
    InvalidPartitions,
    ManifestChanged,
    MetadataUnavailable,
    PartitionState,
    SegmentCommit,
    SegmentRef,
    TopicExists,
    TransactionConflict,
    UnknownTopic,
)
from kafscale.metadata.acls import AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType

# Change notifications must arrive within a second of the change.
NOTIFY_WITHIN = 1.0


def segment(base, last, topic="events", partition=0):
    return SegmentRef(
        base_offset=base,
        last_offset=last,
        max_timestamp=1_700_000_000_000 + last,
        size=100 * (last - base + 1),
        count=last - base + 1,
        key=f"{topic}/{partition}/segment-{base:020d}.kfs",
    )


def shared_slice(base, last, position, topic="events", partition=0):
    """A manifest entry naming a slice of a multi-partition object."""
    return SegmentRef(base, last, 1_700_000_000_000 + last, 100 * (last - base + 1), last - base + 1,
                      "~objects/0001700000000000-0-0011223344556677.kfs", position, 2)


def merged_segment(*refs, writer="a"):
    """One SegmentRef holding the offsets of ``refs``, under a new key
    unique to ``writer``."""
    return SegmentRef(
        base_offset=refs[0].base_offset,
        last_offset=refs[-1].last_offset,
        max_timestamp=max(ref.max_timestamp for ref in refs),
        size=sum(ref.size for ref in refs),
        count=sum(ref.count for ref in refs),
        key=f"{refs[0].key.removesuffix('.kfs')}-merged-{refs[-1].last_offset}-{writer}.kfs",
    )


def initial_state(topic, partition):
    return PartitionState(topic, partition, 0, 0, 0, (), ())


def next_change(store):
    """-> a Deferred that fires with the next change set ``store`` reports."""
    changed = Deferred()

    def notified(areas):
        unsubscribe()
        changed.callback(areas)

    unsubscribe = store.subscribe(notified)
    return changed


class MetadataStoreContract:
    """The tests; the TestCase they are mixed into provides make_store()."""

    async def claimed_topic(self, store, name="events", partitions=1):
        await store.create_topic(name, partitions)
        return await store.claim_partition(name, 0, 0)

    # SCRAM credentials

    async def test_scram_credentials(self):
        store = await self.make_store()
        self.assertTrue(verifyObject(IScramCredentialStore, store))
        self.assertEqual((await store.scram_credentials(), await store.scram_credentials("a/b")), ({}, {}))
        first = ScramCredential("SCRAM-SHA-256", b"salt", b"stored", b"server", 4096)
        second = ScramCredential("SCRAM-SHA-512", b"\0\xff", b"s" * 64, b"k" * 64, 8192)
        await store.set_scram_credential("a/b", first)
        await store.set_scram_credential("a/b", second)
        await store.set_scram_credential("c", first)
        self.assertEqual(await store.scram_credentials("a/b"), {"SCRAM-SHA-256": first, "SCRAM-SHA-512": second})
        replaced = ScramCredential("SCRAM-SHA-256", b"other", b"stored2", b"server2", 4096)
        await store.set_scram_credential("c", replaced)
        self.assertEqual(await store.scram_credentials(), {"a/b": {"SCRAM-SHA-256": first, "SCRAM-SHA-512": second},
                                                           "c": {"SCRAM-SHA-256": replaced}})
        self.assertTrue(await store.delete_scram_credential("a/b", "SCRAM-SHA-256"))
        self.assertFalse(await store.delete_scram_credential("a/b", "SCRAM-SHA-256"))
        self.assertEqual(await store.scram_credentials("a/b"), {"SCRAM-SHA-512": second})

    # Topics

    async def test_provides_interface(self):
        store = await self.make_store()
        self.assertTrue(verifyObject(IMetadataStore, store))

    async def test_create_topic(self):
        store = await self.make_store()
        configs = {"retention.ms": "60000"}
        info = await store.create_topic("events", 3, configs)
        configs["retention.ms"] = "1"
        self.assertEqual(
            (info.name, info.partitions, info.configs), ("events", 3, {"retention.ms": "60000"})
        )
        self.assertNotEqual(info.topic_id.int, 0)
        self.assertGreater(info.created_ms, 1_600_000_000_000)
        self.assertEqual(await store.topics(), {"events": info})
        for partition in range(3):
            self.assertEqual(
                await store.partition_state("events", partition), initial_state("events", partition)
            )

    async def test_create_existing_topic(self):
        store = await self.make_store()
        info = await store.create_topic("events", 1)
        with self.assertRaises(TopicExists):
            await store.create_topic("events", 2)
        self.assertEqual(await store.topics(), {"events": info})

    async def test_create_topic_without_partitions(self):
        store = await self.make_store()
        with self.assertRaises(InvalidPartitions):
            await store.create_topic("events", 0)
        self.assertEqual(await store.topics(), {})

    async def test_topics_lists_every_topic(self):
        store = await self.make_store()
        created = {name: await store.create_topic(name, 1) for name in ("a", "b.c", "d_e-f")}
        self.assertEqual(await store.topics(), created)

    async def test_delete_topic(self):
        store = await self.make_store()
        kept = await store.create_topic("kept", 1)
        info = await store.create_topic("events", 2)
        await store.claim_partition("events", 1, 0)
        await store.commit_segment("events", 1, 1, 0, segment(0, 9, partition=1))
        self.assertEqual(await store.delete_topic("events"), info)
        self.assertEqual(await store.topics(), {"kept": kept})
        with self.assertRaises(UnknownTopic):
            await store.partition_state("events", 1)
        with self.assertRaises(UnknownTopic):
            await store.delete_topic("events")

    async def test_delete_topic_deletes_its_committed_offsets(self):
        # As in Kafka: a topic created again under the name must not resume
        # its groups at the old topic's offsets, skipping records.
        store = await self.make_store()
        await store.create_topic("events", 2)
        await store.create_topic("events.kept", 1)
        kept = CommittedOffset(5, -1, "", 1_700_000_000_000)
        for group in ("readers", "group/with/slashes"):
            await store.commit_offsets(group, {
                ("events", 0): CommittedOffset(10, 1, "", 1_700_000_000_000),
                ("events", 1): CommittedOffset(20, 1, "", 1_700_000_000_000),
                ("events.kept", 0): kept,
            })
        await store.delete_topic("events")
        await store.create_topic("events", 2)
        for group in ("readers", "group/with/slashes"):
            self.assertEqual(await store.fetch_offsets(group), {("events.kept", 0): kept})

    async def test_recreated_topic_is_new(self):
        store = await self.make_store()
        first = await self.claimed_topic(store)
        first_info = (await store.topics())["events"]
        await store.commit_segment("events", 0, first.leader_epoch, 0, segment(0, 9))
        await store.delete_topic("events")
        second_info = await store.create_topic("events", 1)
        self.assertNotEqual(second_info.topic_id, first_info.topic_id)
        self.assertEqual(await store.partition_state("events", 0), initial_state("events", 0))

    async def test_replication_factor_is_kept(self):
        store = await self.make_store()
        created = await store.create_topic("events", 2, replication_factor=3)
        self.assertEqual(created.replication_factor, 3)
        self.assertEqual((await store.topics())["events"].replication_factor, 3)
        self.assertEqual((await store.add_partitions("events", 4)).replication_factor, 3)
        self.assertEqual((await store.alter_topic_configs("events", set={"retention.ms": "1"})).replication_factor, 3)
        self.assertEqual((await store.create_topic("plain", 1)).replication_factor, 1)

    async def test_alter_topic_configs(self):
        store = await self.make_store()
        await store.create_topic("events", 1, {"retention.ms": "1000", "segment.bytes": "1024"})
        updates = {"retention.ms": "2000", "max.message.bytes": "100"}
        info = await store.alter_topic_configs("events", set=updates, delete=["segment.bytes"])
        updates.clear()
        self.assertEqual(info.configs, {"retention.ms": "2000", "max.message.bytes": "100"})
        self.assertEqual((await store.topics())["events"], info)
        info = await store.alter_topic_configs("events", delete=["retention.ms", "not.set"])
        self.assertEqual(info.configs, {"max.message.bytes": "100"})
        with self.assertRaises(UnknownTopic):
            await store.alter_topic_configs("missing", set={"retention.ms": "1"})

    async def test_add_partitions(self):
        store = await self.make_store()
        created = await store.create_topic("events", 2)
        state = await store.claim_partition("events", 0, 0)
        info = await store.add_partitions("events", 5)
        self.assertEqual((info.partitions, info.topic_id), (5, created.topic_id))
        self.assertEqual((await store.topics())["events"], info)
        self.assertEqual(await store.partition_state("events", 0), state)
        for partition in range(2, 5):
            self.assertEqual(
                await store.partition_state("events", partition), initial_state("events", partition)
            )
        for total in (5, 3):
            with self.assertRaises(InvalidPartitions):
                await store.add_partitions("events", total)
        with self.assertRaises(UnknownTopic):
            await store.add_partitions("missing", 2)

    # Partitions

    async def test_unknown_partition(self):
        store = await self.make_store()
        await store.create_topic("events", 2)
        for topic, partition in (("missing", 0), ("events", 2), ("events", -1)):
            with self.assertRaises(UnknownTopic):
                await store.partition_state(topic, partition)
        with self.assertRaises(UnknownTopic):
            await store.claim_partition("events", 2, 0)
        with self.assertRaises(UnknownTopic):
            await store.commit_segment("missing", 0, 1, 0, segment(0, 0))

    async def test_claim_bumps_epoch_and_history(self):
        store = await self.make_store()
        await store.create_topic("events", 1)
        first = await store.claim_partition("events", 0, 0)
        self.assertEqual((first.leader_epoch, first.epoch_history), (1, ((1, 0),)))
        await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        second = await store.claim_partition("events", 0, 1)
        self.assertEqual((second.leader_epoch, second.next_offset), (2, 10))
        self.assertEqual(second.epoch_history, ((1, 0), (2, 10)))
        self.assertEqual(second.segments, (segment(0, 9),))
        self.assertEqual(await store.partition_state("events", 0), second)

    async def test_stale_claim_is_fenced(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        with self.assertRaises(Fenced) as raised:
            await store.claim_partition("events", 0, 0)
        self.assertEqual(raised.exception.leader_epoch, 1)
        self.assertEqual((await store.partition_state("events", 0)).leader_epoch, 1)

    async def test_epoch_that_appended_nothing_leaves_no_history(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        await store.commit_segment("events", 0, 1, 0, segment(0, 4))
        await store.claim_partition("events", 0, 1)
        state = await store.claim_partition("events", 0, 2)
        self.assertEqual(state.epoch_history, ((1, 0), (3, 5)))

    async def test_commit_segment(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        first = await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        self.assertEqual((first.next_offset, first.segments), (10, (segment(0, 9),)))
        second = await store.commit_segment("events", 0, 1, 10, segment(10, 10))
        self.assertEqual(second.next_offset, 11)
        self.assertEqual(second.segments, (segment(0, 9), segment(10, 10)))
        self.assertEqual((second.leader_epoch, second.log_start_offset), (1, 0))
        self.assertEqual(await store.partition_state("events", 0), second)

    async def test_commit_with_stale_epoch_is_fenced(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        successor = await store.claim_partition("events", 0, 1)
        with self.assertRaises(Fenced) as raised:
            await store.commit_segment("events", 0, 1, 10, segment(10, 19))
        self.assertEqual((raised.exception.leader_epoch, raised.exception.next_offset), (2, 10))
        self.assertEqual(await store.partition_state("events", 0), successor)

    async def test_commit_with_wrong_next_offset_is_fenced(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        committed = await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        for expected in (0, 11):
            with self.assertRaises(Fenced):
                await store.commit_segment("events", 0, 1, expected, segment(expected, expected + 5))
        self.assertEqual(await store.partition_state("events", 0), committed)

    async def test_commit_of_a_segment_that_does_not_continue_the_log(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        for bad in (segment(1, 9), segment(0, -1)):
            with self.assertRaises(ValueError):
                await store.commit_segment("events", 0, 1, 0, bad)
        self.assertEqual((await store.partition_state("events", 0)).next_offset, 0)

    async def test_concurrent_commits_one_wins(self):
        store = await self.make_store()
        other = await self.make_store()
        await self.claimed_topic(store)
        ours = segment(0, 9)
        theirs = SegmentRef(0, 4, 0, 10, 5, "events/0/segment-00000000000000000000-other.kfs")
        results = await DeferredList(
            [
                store.commit_segment("events", 0, 1, 0, ours),
                other.commit_segment("events", 0, 1, 0, theirs),
            ],
            consumeErrors=True,
        )
        outcomes = [success for success, _ in results]
        self.assertEqual(sorted(outcomes), [False, True])
        winner = results[outcomes.index(True)][1]
        loser = results[outcomes.index(False)][1]
        loser.trap(Fenced)
        self.assertIn(winner.segments, [(ours,), (theirs,)])
        self.assertEqual(await store.partition_state("events", 0), winner)
        self.assertEqual(await other.partition_state("events", 0), winner)

    async def test_slice_entries_keep_their_position_and_format(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        entry = shared_slice(0, 9, position=1234)
        committed = await store.commit_segment("events", 0, 1, 0, entry)
        self.assertEqual(committed.segments, (entry,))
        other = await self.make_store()
        self.assertEqual((await other.partition_state("events", 0)).segments, (entry,))

    async def test_entries_keep_their_transactions(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        entry = replace(shared_slice(0, 9, position=0), aborted=((7, 2, 5), (8, 0, 9)), open=((9, 6),))
        plain = segment(10, 19)
        await store.commit_segment("events", 0, 1, 0, entry)
        committed = await store.commit_segment("events", 0, 1, 10, plain)
        self.assertEqual(committed.segments, (entry, plain))
        other = await self.make_store()
        self.assertEqual((await other.partition_state("events", 0)).segments, (entry, plain))

    async def test_commit_segments(self):
        store = await self.make_store()
        await store.create_topic("events", 3)
        for partition in range(3):
            await store.claim_partition("events", partition, 0)
        commits = [SegmentCommit("events", partition, 1, 0, shared_slice(0, partition, 20 + 200 * partition,
                                                                          partition=partition))
                   for partition in (2, 0, 1)]
        results = await store.commit_segments(commits)
        self.assertEqual([state.partition for state in results], [2, 0, 1])
        other = await self.make_store()
        for commit, state in zip(commits, results):
            self.assertEqual((state.next_offset, state.segments), (commit.segment.last_offset + 1, (commit.segment,)))
            self.assertEqual(await other.partition_state("events", commit.partition), state)

    async def test_commit_segments_refuses_each_stale_commit_alone(self):
        store = await self.make_store()
        other = await self.make_store()
        await store.create_topic("events", 3)
        for partition in range(3):
            await store.claim_partition("events", partition, 0)
        await store.commit_segment("events", 2, 1, 0, segment(0, 4, partition=2))
        successor = await other.claim_partition("events", 1, 1)
        results = await store.commit_segments([
            SegmentCommit("events", 0, 1, 0, shared_slice(0, 9, 20)),
            SegmentCommit("events", 1, 1, 0, shared_slice(0, 9, 300, partition=1)),
            SegmentCommit("events", 2, 1, 0, shared_slice(0, 9, 600, partition=2)),
            SegmentCommit("missing", 0, 1, 0, shared_slice(0, 9, 900, topic="missing")),
        ])
        self.assertEqual(results[0], await other.partition_state("events", 0))
        self.assertEqual(results[0].segments, (shared_slice(0, 9, 20),))
        self.assertIsInstance(results[1], Fenced)
        self.assertEqual((results[1].leader_epoch, results[1].next_offset), (2, 0))
        self.assertIsInstance(results[2], Fenced)
        self.assertEqual(results[2].next_offset, 5)
        self.assertIsInstance(results[3], UnknownTopic)
        self.assertEqual(await other.partition_state("events", 1), successor)
        self.assertEqual((await other.partition_state("events", 2)).next_offset, 5)

    async def test_commit_segments_beyond_one_transaction(self):
        # etcd takes at most 128 operations per transaction: two per commit.
        store = await self.make_store()
        count = 150
        await store.create_topic("events", count)
        for partition in range(count):
            await store.claim_partition("events", partition, 0)
        commits = [SegmentCommit("events", partition, 1, 0, shared_slice(0, 0, 20 + 100 * partition,
                                                                          partition=partition))
                   for partition in range(count)]
        results = await store.commit_segments(commits)
        self.assertEqual([state.next_offset for state in results], [1] * count)
        other = await self.make_store()
        for partition in (0, 63, 64, 127, 128, 149):
            state = await other.partition_state("events", partition)
            self.assertEqual(state.segments, (commits[partition].segment,))

    async def test_commit_segments_that_do_not_continue_the_log_apply_nothing(self):
        store = await self.make_store()
        await store.create_topic("events", 2)
        for partition in range(2):
            await store.claim_partition("events", partition, 0)
        with self.assertRaises(ValueError):
            await store.commit_segments([
                SegmentCommit("events", 0, 1, 0, shared_slice(0, 9, 20)),
                SegmentCommit("events", 1, 1, 0, shared_slice(3, 9, 300, partition=1)),
            ])
        for partition in range(2):
            self.assertEqual((await store.partition_state("events", partition)).next_offset, 0)

    async def test_advance_log_start_drops_whole_segments(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        for base in (0, 10, 20):
            await store.commit_segment("events", 0, 1, base, segment(base, base + 9))
        state, removed = await store.advance_log_start("events", 0, 1, 15)
        self.assertEqual(removed, [segment(0, 9)])
        self.assertEqual((state.log_start_offset, state.next_offset), (15, 30))
        self.assertEqual(state.segments, (segment(10, 19), segment(20, 29)))
        self.assertEqual(await store.partition_state("events", 0), state)

        unchanged, removed = await store.advance_log_start("events", 0, 1, 12)
        self.assertEqual((unchanged, removed), (state, []))

        state, removed = await store.advance_log_start("events", 0, 1, 30)
        self.assertEqual(removed, [segment(10, 19), segment(20, 29)])
        self.assertEqual((state.log_start_offset, state.segments), (30, ()))
        state = await store.commit_segment("events", 0, 1, 30, segment(30, 39))
        self.assertEqual((state.log_start_offset, state.segments), (30, (segment(30, 39),)))

    async def test_advance_log_start_is_fenced_and_bounded(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        committed = await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        with self.assertRaises(Fenced):
            await store.advance_log_start("events", 0, 0, 5)
        with self.assertRaises(ValueError):
            await store.advance_log_start("events", 0, 1, 11)
        self.assertEqual(await store.partition_state("events", 0), committed)

    async def test_advance_log_start_prunes_epoch_history(self):
        store = await self.make_store()
        await self.claimed_topic(store)
        await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        await store.claim_partition("events", 0, 1)
        await store.commit_segment("events", 0, 2, 10, segment(10, 19))
        await store.claim_partition("events", 0, 2)
        await store.commit_segment("events", 0, 3, 20, segment(20, 29))
        state, _ = await store.advance_log_start("events", 0, 3, 10)
        self.assertEqual(state.epoch_history, ((2, 10), (3, 20)))
        state, _ = await store.advance_log_start("events", 0, 3, 30)
        self.assertEqual(state.epoch_history, ((3, 20),))

    # Replacing manifest entries (merges)

    async def committed(self, store, *bases_and_lasts):
        await self.claimed_topic(store)
        state = None
        for base, last in bases_and_lasts:
            state = await store.commit_segment("events", 0, 1, base, segment(base, last))
        return state

    async def test_replace_segments(self):
        store = await self.make_store()
        before = await self.committed(store, (0, 9), (10, 19), (20, 29), (30, 39))
        merged = merged_segment(segment(10, 19), segment(20, 29))
        state = await store.replace_segments("events", 0, 1, before.segments[1:3], [merged])
        self.assertEqual(state.segments, (segment(0, 9), merged, segment(30, 39)))
        self.assertEqual((state.next_offset, state.log_start_offset, state.leader_epoch), (40, 0, 1))
        self.assertEqual(state.epoch_history, before.epoch_history)
        self.assertEqual(await store.partition_state("events", 0), state)
        other = await self.make_store()
        self.assertEqual(await other.partition_state("events", 0), state)
        # The log goes on after the replacement, from either store.
        state = await store.commit_segment("events", 0, 1, 40, segment(40, 49))
        self.assertEqual(state.segments, (segment(0, 9), merged, segment(30, 39), segment(40, 49)))
        self.assertEqual(await other.partition_state("events", 0), state)

    async def test_replace_segments_by_several(self):
        store = await self.make_store()
        before = await self.committed(store, (0, 9), (10, 19), (20, 29))
        new = [merged_segment(segment(0, 9), segment(10, 14)), merged_segment(segment(15, 19), segment(20, 29))]
        state = await store.replace_segments("events", 0, 1, before.segments, new)
        self.assertEqual(state.segments, tuple(new))
        self.assertEqual(await (await self.make_store()).partition_state("events", 0), state)

    async def test_replace_segments_with_stale_epoch_is_fenced(self):
        store = await self.make_store()
        before = await self.committed(store, (0, 9), (10, 19))
        successor = await store.claim_partition("events", 0, 1)
        with self.assertRaises(Fenced) as raised:
            await store.replace_segments("events", 0, 1, before.segments, [merged_segment(*before.segments)])
        self.assertEqual(raised.exception.leader_epoch, 2)
        self.assertEqual(await store.partition_state("events", 0), successor)

    async def test_replace_segments_gone_from_the_manifest(self):
        store = await self.make_store()
        before = await self.committed(store, (0, 9), (10, 19), (20, 29))
        dropped, _ = await store.advance_log_start("events", 0, 1, 10)
        with self.assertRaises(ManifestChanged):
            await store.replace_segments("events", 0, 1, before.segments[:2], [merged_segment(*before.segments[:2])])
        # Another store (another process) may have merged them already.
        other = await self.make_store()
        merged = merged_segment(*dropped.segments)
        latest = await other.replace_segments("events", 0, 1, dropped.segments, [merged])
        with self.assertRaises(ManifestChanged):
            await store.replace_segments("events", 0, 1, dropped.segments,
                                         [merged_segment(*dropped.segments, writer="b")])
        self.assertEqual(await store.partition_state("events", 0), latest)

    async def test_replacement_must_hold_the_same_offsets(self):
        store = await self.make_store()
        before = await self.committed(store, (0, 9), (10, 19), (20, 29))
        old = before.segments[:2]
        for bad_old, bad_new in [
            (old, [merged_segment(segment(0, 9), segment(10, 18))]),  # short
            (old, [merged_segment(segment(1, 9), segment(10, 19))]),  # starts late
            (old, [segment(0, 9), merged_segment(segment(12, 19))]),  # a gap, and an old key
            ([before.segments[0], before.segments[2]], [merged_segment(segment(0, 29))]),  # old not a run
            ((), [merged_segment(segment(0, 9))]),
        ]:
            with self.assertRaises(ValueError):
                await store.replace_segments("events", 0, 1, bad_old, bad_new)
        self.assertEqual(await store.partition_state("events", 0), before)

    # Consumer groups

    async def test_commit_and_fetch_offsets(self):
        store = await self.make_store()
        first = CommittedOffset(10, 1, "meta", 1_700_000_000_000)
        second = CommittedOffset(3, -1, None, 1_700_000_000_001)
        offsets = {("events", 0): first, ("events", 1): second}
        await store.commit_offsets("readers", offsets)
        offsets.clear()
        self.assertEqual(
            await store.fetch_offsets("readers", [("events", 1), ("events", 2), ("other", 0)]),
            {("events", 1): second},
        )
        self.assertEqual(
            await store.fetch_offsets("readers"), {("events", 0): first, ("events", 1): second}
        )
        self.assertEqual(await store.fetch_offsets("writers"), {})

        moved = CommittedOffset(20, 2, "", 1_700_000_000_002)
        await store.commit_offsets("readers", {("events", 0): moved})
        self.assertEqual(
            await store.fetch_offsets("readers"), {("events", 0): moved, ("events", 1): second}
        )

    async def test_delete_offsets(self):
        store = await self.make_store()
        kept = CommittedOffset(3, -1, None, 1_700_000_000_001)
        await store.commit_offsets("readers", {("events", 0): kept, ("events", 1): kept, ("other", 0): kept})
        await store.commit_offsets("writers", {("events", 1): kept})
        await store.delete_offsets("readers", [("events", 1), ("other", 0), ("never", 7)])
        self.assertEqual(await store.fetch_offsets("readers"), {("events", 0): kept})
        self.assertEqual(await store.fetch_offsets("writers"), {("events", 1): kept})
        await store.delete_offsets("nobody", [("events", 0)])

    async def test_group_configs(self):
        store = await self.make_store()
        self.assertEqual(await store.group_configs("readers"), {})
        updates = {"consumer.session.timeout.ms": "50000", "share.auto.offset.reset": "earliest"}
        self.assertEqual(await store.alter_group_configs("readers", set=updates), updates)
        updates.clear()
        after = await store.alter_group_configs("readers", set={"consumer.heartbeat.interval.ms": "6000"},
                                                delete=["share.auto.offset.reset", "not.set"])
        self.assertEqual(after, {"consumer.session.timeout.ms": "50000", "consumer.heartbeat.interval.ms": "6000"})
        self.assertEqual(await store.group_configs("readers"), after)
        self.assertEqual(await store.group_configs("writers"), {})
        self.assertEqual(await store.alter_group_configs("readers", delete=list(after)), {})
        self.assertEqual(await store.group_configs("readers"), {})

    async def test_broker_configs(self):
        store = await self.make_store()
        self.assertEqual(await store.broker_configs(), {})
        self.assertEqual(await store.alter_broker_configs("", set={"log.retention.ms": "1000"}),
                         {"log.retention.ms": "1000"})
        after = await store.alter_broker_configs("2", set={"message.max.bytes": "2048", "log.retention.bytes": "1"},
                                                 delete=["not.set"])
        self.assertEqual(after, {"message.max.bytes": "2048", "log.retention.bytes": "1"})
        self.assertEqual(await store.alter_broker_configs("2", delete=["log.retention.bytes"]),
                         {"message.max.bytes": "2048"})
        self.assertEqual(await store.broker_configs(),
                         {"": {"log.retention.ms": "1000"}, "2": {"message.max.bytes": "2048"}})
        self.assertEqual(await store.alter_broker_configs("", delete=["log.retention.ms"]), {})
        self.assertEqual(await store.broker_configs(), {"2": {"message.max.bytes": "2048"}})

    async def test_group_state(self):
        store = await self.make_store()
        self.assertIsNone(await store.load_group("readers"))
        state = {"generation": 3, "protocol": "range", "members": [{"id": "m-1", "assignment": "AAE="}]}
        await store.save_group("readers", state)
        state["generation"] = 4
        self.assertEqual((await store.load_group("readers"))["generation"], 3)
        await store.save_group("readers", state)
        self.assertEqual(await store.load_group("readers"), state)

    async def test_transaction_state(self):
        store = await self.make_store()
        self.assertIsNone(await store.load_transaction("tx-1"))
        state = {"producer_id": 5, "producer_epoch": 0, "state": "Empty", "partitions": [["events", 0]]}
        first = await store.save_transaction("tx-1", state, 0)
        with self.assertRaises(TransactionConflict):
            await store.save_transaction("tx-1", state, 0)
        second = await store.save_transaction("tx-1", {**state, "state": "Ongoing"}, first)
        self.assertNotEqual(first, second)
        with self.assertRaises(TransactionConflict):
            await store.save_transaction("tx-1", state, first)
        other = await self.make_store()
        self.assertEqual(await other.load_transaction("tx-1"), ({**state, "state": "Ongoing"}, second))
        await store.save_transaction("tx/2", state, 0)
        self.assertEqual(sorted(await other.transactions()), ["tx-1", "tx/2"])

    async def test_delete_transaction_only_at_its_version(self):
        store = await self.make_store()
        state = {"producer_id": 5, "producer_epoch": 0, "state": "CompleteCommit"}
        first = await store.save_transaction("tx-1", state, 0)
        second = await store.save_transaction("tx-1", state, first)
        self.assertFalse(await store.delete_transaction("tx-1", first))
        self.assertIsNotNone(await store.load_transaction("tx-1"))
        self.assertTrue(await store.delete_transaction("tx-1", second))
        self.assertIsNone(await store.load_transaction("tx-1"))
        self.assertEqual(await store.transactions(), {})
        self.assertFalse(await store.delete_transaction("tx-1", second))
        # Forgotten, the id starts again from nothing.
        await store.save_transaction("tx-1", state, 0)

    async def test_group_state_must_be_json(self):
        store = await self.make_store()
        with self.assertRaises(TypeError):
            await store.save_group("readers", {"assignment": b"\x00\x01"})

    async def test_groups_and_delete_group(self):
        store = await self.make_store()
        await store.save_group("with-state", {"generation": 1})
        await store.commit_offsets("with/offsets", {("events", 0): CommittedOffset(1, -1, None, 0)})
        await store.save_group("both", {"generation": 2})
        await store.commit_offsets("both", {("events", 0): CommittedOffset(2, -1, None, 0)})
        self.assertEqual(await store.groups(), ["both", "with-state", "with/offsets"])

        self.assertTrue(await store.delete_group("both"))
        self.assertIsNone(await store.load_group("both"))
        self.assertEqual(await store.fetch_offsets("both"), {})
        self.assertTrue(await store.delete_group("with/offsets"))
        self.assertFalse(await store.delete_group("both"))
        self.assertEqual(await store.groups(), ["with-state"])

    # Brokers

    async def test_register_broker(self):
        store = await self.make_store()
        self.assertEqual(await store.brokers(), [])
        await store.register_broker(BrokerInfo(2, "127.0.0.1", 9093, None, 1_700_000_000_000))
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9092, "rack-a", 1_700_000_000_000))
        moved = BrokerInfo(2, "localhost", 9094, None, 1_700_000_000_500)
        await store.register_broker(moved)
        self.assertEqual(
            await store.brokers(),
            [BrokerInfo(1, "127.0.0.1", 9092, "rack-a", 1_700_000_000_000), moved],
        )

    async def test_stopped_store_deregisters_its_brokers(self):
        store = await self.make_store()
        other = await self.make_store()
        await store.register_broker(BrokerInfo(1, "127.0.0.1", 9092, None, 0))
        self.assertEqual([broker.node_id for broker in await other.brokers()], [1])
        await store.stopService()
        self.assertEqual(await other.brokers(), [])

    # Lifetime and sharing

    async def test_state_survives_a_restart(self):
        store = await self.make_store()
        info = await store.create_topic("events", 2, {"retention.ms": "1000"})
        await store.claim_partition("events", 1, 0)
        state = await store.commit_segment("events", 1, 1, 0, segment(0, 9, partition=1))
        offsets = {("events", 1): CommittedOffset(5, 1, None, 1_700_000_000_000)}
        await store.commit_offsets("readers", offsets)
        await store.save_group("readers", {"generation": 7})
        await store.stopService()

        restarted = await self.make_store()
        self.assertEqual(await restarted.topics(), {"events": info})
        self.assertEqual(await restarted.partition_state("events", 1), state)
        self.assertEqual(await restarted.fetch_offsets("readers"), offsets)
        self.assertEqual(await restarted.load_group("readers"), {"generation": 7})

    async def test_stopped_store_is_unavailable(self):
        store = await self.make_store()
        await store.stopService()
        with self.assertRaises(MetadataUnavailable):
            await store.topics()

    async def test_other_stores_see_changes(self):
        store = await self.make_store()
        other = await self.make_store()
        await self.claimed_topic(store)
        await other.partition_state("events", 0)
        state = await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        self.assertEqual(await other.partition_state("events", 0), state)
        state, _ = await other.advance_log_start("events", 0, 1, 10)
        self.assertEqual(await store.partition_state("events", 0), state)

    async def test_subscriber_hears_of_another_stores_change(self):
        store = await self.make_store()
        other = await self.make_store()
        unsubscribed = []
        store.subscribe(unsubscribed.append)()
        changed = next_change(store)
        self.assertEqual(await store.topics(), {})
        info = await other.create_topic("events", 1)
        areas = await changed.addTimeout(NOTIFY_WITHIN, reactor)
        self.assertIn("topics", areas)
        self.assertEqual(await store.topics(), {"events": info})
        self.assertEqual(unsubscribed, [])

    # ACLs and client quotas

    async def test_create_describe_and_delete_acls(self):
        store = await self.make_store()
        read = acl(ResourceType.TOPIC, "orders", operation=Operation.READ)
        prefixed = acl(ResourceType.TOPIC, "orders-", PatternType.PREFIXED, operation=Operation.WRITE)
        group = acl(ResourceType.GROUP, "billing", principal="User:bob", permission=Permission.DENY)
        self.assertEqual(await store.acls(), [])
        await store.create_acls([read, prefixed, group, read])
        await store.create_acls([read])
        self.assertEqual(sorted(await store.acls()), sorted([read, prefixed, group]))
        removed = await store.delete_acls([AclFilter(resource_type=ResourceType.TOPIC),
                                           AclFilter(principal="User:alice", operation=Operation.READ)])
        self.assertEqual([sorted(found) for found in removed], [sorted([read, prefixed]), [read]])
        self.assertEqual(await store.acls(), [group])
        self.assertEqual(await store.delete_acls([AclFilter(resource_type=ResourceType.CLUSTER)]), [[]])

    async def test_more_acls_at_once_than_one_etcd_transaction_holds(self):
        store = await self.make_store()
        many = [acl(ResourceType.TOPIC, f"topic-{n}", operation=Operation.READ) for n in range(300)]
        await store.create_acls(many)
        self.assertEqual(sorted(await store.acls()), sorted(many))

    async def test_acl_changes_are_notified(self):
        store = await self.make_store()
        other = await self.make_store()
        self.assertEqual(await store.acls(), [])
        changed = next_change(store)
        await other.create_acls([acl(ResourceType.TOPIC, "orders")])
        self.assertIn("acls", await changed.addTimeout(NOTIFY_WITHIN, reactor))
        changed = next_change(store)
        await other.delete_acls([AclFilter()])
        self.assertIn("acls", await changed.addTimeout(NOTIFY_WITHIN, reactor))
        self.assertEqual(await store.acls(), [])

    async def test_alter_client_quotas(self):
        store = await self.make_store()
        alice = (("user", "alice"),)
        defaults = (("client-id", None), ("user", None))
        self.assertEqual(await store.client_quotas(), {})
        await store.alter_client_quotas([(alice, {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}),
                                         (defaults, {"request_rate": 10.0})])
        self.assertEqual(await store.client_quotas(), {
            alice: {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            defaults: {"request_rate": 10.0},
        })
        await store.alter_client_quotas([(alice, {"producer_byte_rate": None}), (defaults, {"request_rate": None})])
        self.assertEqual(await store.client_quotas(), {alice: {"consumer_byte_rate": 2048.0}})

    async def test_quota_changes_are_notified(self):
        store = await self.make_store()
        other = await self.make_store()
        self.assertEqual(await store.client_quotas(), {})
        changed = next_change(store)
        await other.alter_client_quotas([((("client-id", "a/b"),), {"producer_byte_rate": 1.0})])
        self.assertIn("quotas", await changed.addTimeout(NOTIFY_WITHIN, reactor))
        self.assertEqual(await store.client_quotas(), {(("client-id", "a/b"),): {"producer_byte_rate": 1.0}})

    async def test_broker_config_changes_are_notified(self):
        store = await self.make_store()
        other = await self.make_store()
        self.assertEqual(await store.broker_configs(), {})
        changed = next_change(store)
        await other.alter_broker_configs("", {"log.retention.ms": "1000"})
        self.assertIn("broker_configs", await changed.addTimeout(NOTIFY_WITHIN, reactor))
        self.assertEqual(await store.broker_configs(), {"": {"log.retention.ms": "1000"}})


def acl(resource_type, name, pattern_type=PatternType.LITERAL, principal="User:alice", host="*",
        operation=Operation.ALL, permission=Permission.ALLOW):
    return AclBinding(resource_type, name, pattern_type, principal, host, operation, permission)
