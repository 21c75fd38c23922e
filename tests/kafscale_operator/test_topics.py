from confluent_kafka.admin import AdminClient
from twisted.trial import unittest

from kafscale_operator import topics
from kafscale_operator.topics import (
    AddPartitions,
    AlterTopicConfigs,
    CreateTopic,
    DeleteTopic,
    KafkaTopics,
    TopicError,
    TopicSpec,
    TopicState,
    plan,
)
from tests.support.admin import AdminCase, EtcdStores
from tests.support.brokers import in_thread, start_broker
from tests.support.waiting import eventually


def topics_on(test, bootstrap):
    """KafkaTopics on ``bootstrap``; its AdminClient is destroyed (with the
    last reference to it) before the broker stops, so it does not go on
    trying to reach it."""
    holder = [KafkaTopics(AdminClient({"bootstrap.servers": bootstrap}), timeout=15)]
    test.addCleanup(holder.clear)
    return holder


class PlanTests(unittest.TestCase):
    wanted = TopicSpec("orders", 6, {"retention.ms": "86400000", "max.message.bytes": "100000"})

    def test_a_missing_topic_is_created(self):
        self.assertEqual(plan(self.wanted, None).actions, (CreateTopic(self.wanted),))

    def test_a_topic_in_sync_needs_nothing(self):
        observed = TopicState("orders", "id", 6, dict(self.wanted.configs))
        self.assertEqual(plan(self.wanted, observed), topics.TopicPlan())

    def test_partitions_grow(self):
        observed = TopicState("orders", "id", 2, dict(self.wanted.configs))
        self.assertEqual(plan(self.wanted, observed).actions, (AddPartitions("orders", 6),))

    def test_partitions_never_shrink(self):
        observed = TopicState("orders", "id", 9, dict(self.wanted.configs))
        done = plan(self.wanted, observed)
        self.assertEqual(done.actions, ())
        [problem] = done.problems
        self.assertIn("9 partitions, more than the 6", problem)

    def test_configs_changed_or_set_elsewhere_are_set_back(self):
        observed = TopicState("orders", "id", 6, {"retention.ms": "1000", "retention.bytes": "5"})
        self.assertEqual(plan(self.wanted, observed).actions, (AlterTopicConfigs(
            "orders", {"retention.ms": "86400000", "max.message.bytes": "100000"}, ("retention.bytes",)),))

    def test_a_rename_is_refused(self):
        done = plan(self.wanted, None, managed_name="orders-old")
        self.assertEqual(done.actions, ())
        self.assertIn("topicName cannot change", done.problems[0])

    def test_deletion_follows_the_policy(self):
        observed = TopicState("orders", "id", 6)
        self.assertEqual(topics.deletion("orders", observed, "delete"), (DeleteTopic("orders"),))
        self.assertEqual(topics.deletion("orders", observed, "orphan"), ())
        self.assertEqual(topics.deletion("orders", None, "delete"), ())

    def test_spec_of_a_resource(self):
        resource = {"metadata": {"name": "orders-topic"},
                    "spec": {"topicName": "orders", "partitions": 3,
                             "config": {"retention.ms": 1000, "cleanup.policy": "delete", "x.flag": True}}}
        self.assertEqual(topics.spec_of(resource), TopicSpec(
            "orders", 3, {"retention.ms": "1000", "cleanup.policy": "delete", "x.flag": "true"}))
        self.assertEqual(topics.spec_of({"metadata": {"name": "t"}, "spec": {}}), TopicSpec("t", 1, {}))


class ReconcileTests(AdminCase):
    """Against a real broker (the embedded stores), through the Kafka Admin
    API; drift made behind the operator's back with kafscale-admin."""

    async def setUp(self):
        await super().setUp()
        self.held = topics_on(self, self.bootstrap)

    @property
    def topics(self):
        return self.held[0]

    def reconcile(self, wanted, managed=None):
        return in_thread(self.topics.reconcile, wanted, managed)

    def observe(self, name):
        return in_thread(self.topics.observe, name)

    async def test_create_change_and_delete(self):
        done, state = await self.reconcile(TopicSpec("orders", 2, {"retention.ms": "86400000"}))
        self.assertEqual(done.actions, (CreateTopic(TopicSpec("orders", 2, {"retention.ms": "86400000"})),))
        self.assertEqual((state.partitions, state.configs), (2, {"retention.ms": "86400000"}))
        described = await self.admin_json("topics", "describe", "orders")
        self.assertEqual(len(described["partitions"]), 2)

        done, state = await self.reconcile(TopicSpec("orders", 5, {"max.message.bytes": "100000"}))
        self.assertEqual(done.actions, (AddPartitions("orders", 5),
                                        AlterTopicConfigs("orders", {"max.message.bytes": "100000"}, ("retention.ms",))))
        self.assertEqual((state.partitions, state.configs), (5, {"max.message.bytes": "100000"}))

        done, _ = await self.reconcile(TopicSpec("orders", 5, {"max.message.bytes": "100000"}), "orders")
        self.assertEqual(done, topics.TopicPlan(), "a second pass finds nothing to do")

        await in_thread(self.topics.delete, "orders", "delete")
        self.assertIsNone(await self.observe("orders"))
        await self.admin("topics", "describe", "orders", exit_code=1)

    async def test_drift_made_with_kafscale_admin_is_repaired(self):
        wanted = TopicSpec("payments", 3, {"retention.ms": "3600000"})
        await self.reconcile(wanted)
        await self.admin("topics", "alter-config", "payments", "--set", "retention.ms=5", "--set", "retention.bytes=1000")
        await self.admin("topics", "add-partitions", "payments", "--total", "4")

        async def drifted():
            state = await self.observe("payments")
            return state.partitions == 4 and state.configs.get("retention.bytes") == "1000"

        # the broker follows changes made in its store within a second
        await eventually(drifted, what="the broker seeing kafscale-admin's changes")
        done, state = await self.reconcile(wanted, "payments")
        self.assertEqual(done.actions, (AlterTopicConfigs("payments", {"retention.ms": "3600000"}, ("retention.bytes",)),))
        self.assertEqual(state.configs, {"retention.ms": "3600000"})
        self.assertIn("4 partitions, more than the 3", done.problems[0])

        await self.admin("topics", "delete", "payments")

        async def deleted():
            return await self.observe("payments") is None

        await eventually(deleted, what="the broker seeing the topic deleted")
        done, state = await self.reconcile(wanted, "payments")
        self.assertEqual(done.actions, (CreateTopic(wanted),))
        self.assertEqual(state.partitions, 3)

    async def test_an_orphaned_topic_stays(self):
        await self.reconcile(TopicSpec("kept", 1))
        await in_thread(self.topics.delete, "kept", "orphan")
        self.assertIsNotNone(await self.observe("kept"))

    async def test_a_refusal_is_reported(self):
        with self.assertRaises(TopicError) as caught:
            await self.reconcile(TopicSpec("refused", 1, {"retention.ms": "a week"}))
        self.assertIn("retention.ms", str(caught.exception))

    async def test_observing_does_not_create_the_topic(self):
        """The broker auto-creates topics a Metadata request names."""
        self.assertIsNone(await self.observe("absent"))
        self.assertEqual((await self.admin_json("topics", "list")), [])


class ClusterReconcileTests(EtcdStores, AdminCase):
    """Two brokers sharing a real etcd and a bucket: changes made through
    one are seen by the other, and drift is repaired through either."""

    async def setUp(self):
        await super().setUp()
        _, self.other = await start_broker(self, *await self.shared_args())
        self.first, self.second = topics_on(self, self.bootstrap), topics_on(self, self.other)

    async def shared_args(self):
        return [*self.etcd, *self.s3]

    async def test_reconciled_through_either_broker(self):
        wanted = TopicSpec("clustered", 4, {"retention.ms": "600000"})
        await in_thread(self.first[0].reconcile, wanted)

        async def seen_by_the_other():
            state = await in_thread(self.second[0].observe, "clustered")
            return state is not None and state.partitions == 4 and state.configs == {"retention.ms": "600000"}

        await eventually(seen_by_the_other, what="the topic as the second broker sees it")
        await self.admin("topics", "alter-config", "clustered", "--set", "retention.ms=1")

        async def repaired():
            done, state = await in_thread(self.second[0].reconcile, wanted, "clustered")
            return state.configs == {"retention.ms": "600000"}

        await eventually(repaired, what="the config set back through the second broker")
        grown = TopicSpec("clustered", 6, {"retention.ms": "600000"})
        done, state = await in_thread(self.second[0].reconcile, grown, "clustered")
        self.assertEqual(state.partitions, 6)
        await in_thread(self.second[0].delete, "clustered", "delete")

        async def gone_everywhere():
            return (await in_thread(self.first[0].observe, "clustered")) is None

        await eventually(gone_everywhere, what="the topic gone on the first broker")
