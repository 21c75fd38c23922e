"""``kafscale-admin topics`` through click's CliRunner, on the stores of a
running broker: the embedded store with a local directory, and moto S3.

Also the harness the other ``test_kafscale_admin_*`` modules share: each
command runs in a thread (CliRunner blocks), and its Twisted work runs on
trial's reactor instead of under ``task.react``.
"""

import json
import os
import traceback
import uuid

from click.testing import CliRunner
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread
from twisted.trial import unittest

from kafscale.storage.segment import topic_prefix
from kafscale_admin.cli import main
from tests.brokers import in_thread, start_broker
from tests.clients import produce
from tests.etcdserver import etcd_endpoint, missing_reason
from tests.s3server import s3_server
from tests.test_handlers_produce import create_topic
from tests.test_storage_retention import produce_segments, until


def on_trials_reactor(work):
    """A kafscale-admin runner for tests: run ``work(reactor)`` on the
    reactor trial already runs, from CliRunner's thread."""
    return blockingCallFromThread(reactor, work, reactor)


class AdminCase(unittest.TestCase):
    """Runs a broker and points kafscale-admin at its stores; subclasses
    choose the stores (the embedded ones by default)."""

    broker_args = ()

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *self.broker_args, *await self.store_args())
        self.location = ["--data-dir", self.broker.config.data_dir, *self.admin_store_args()]

    async def store_args(self):
        return []

    def admin_store_args(self):
        return []

    def admin_env(self):
        return {}

    async def admin(self, *args, exit_code=0):
        """Run ``kafscale-admin <location> args``; -> the Result, checked
        for ``exit_code``."""
        runner = CliRunner()
        env = {"COLUMNS": "250", **self.admin_env()}
        result = await in_thread(runner.invoke, main, [*self.location, *args], obj=on_trials_reactor, env=env)
        if result.exit_code != exit_code:
            detail = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
            self.fail(f"exit {result.exit_code}, not {exit_code}\nstdout: {result.stdout}\n"
                      f"stderr: {result.stderr}\n{detail}")
        return result

    async def admin_json(self, *args, exit_code=0):
        return json.loads((await self.admin(*args, "--output", "json", exit_code=exit_code)).stdout)

    async def refused(self, *args, says):
        """Run a command that must fail with one line on stderr saying ``says``."""
        result = await self.admin(*args, exit_code=1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn(says, result.stderr)
        return result


class S3Stores:
    """Mixin: the broker and kafscale-admin on a moto bucket."""

    async def store_args(self):
        from tests.s3server import s3_store

        server = s3_server()
        store = await s3_store(self, server)
        self.s3 = ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]
        # In the real environment (not a patched copy): rich reads COLUMNS from it.
        for name, value in (("AWS_ACCESS_KEY_ID", server.access_key), ("AWS_SECRET_ACCESS_KEY", server.secret_key)):
            self.addCleanup(_restore, name, os.environ.get(name))
            os.environ[name] = value
        return self.s3

    def admin_store_args(self):
        return self.s3


class EtcdStores(S3Stores):
    """Mixin: the broker and kafscale-admin on a real etcd (a cluster of
    its own in it) and a moto bucket."""

    async def store_args(self):
        reason = missing_reason("3.5")
        if reason:
            raise unittest.SkipTest(reason)
        self.etcd = ["--etcd", etcd_endpoint("3.5"), "--cluster-id", f"admin-{uuid.uuid4().hex[:12]}"]
        return [*self.etcd, *await super().store_args()]

    def admin_store_args(self):
        return [*self.etcd, *super().admin_store_args()]


def _restore(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class TopicsContract:
    async def test_create_list_and_produce(self):
        result = await self.admin("topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000")
        self.assertIn("created topic orders with 3 partitions", result.stdout)
        # The broker notices the store's change and claims the partitions.
        await until(lambda: len([key for key in self.broker.logs if key[0] == "orders"]) == 3,
                    what="the broker claims orders")
        acks = await in_thread(produce, self.bootstrap, "orders", [(b"k", b"v", None, 2)])
        self.assertEqual(acks, [(2, 0)])

        listed = await self.admin_json("topics", "list")
        self.assertEqual([(t["name"], t["partitions"], t["configs"]) for t in listed],
                         [("orders", 3, {"retention.ms": "60000"})])
        self.assertEqual(listed[0]["topic_id"], str(self.broker.topics["orders"].topic_id))
        table = (await self.admin("topics", "list")).stdout
        self.assertRegex(table, r"│ orders +│ +3 │ [0-9a-f-]{36} │ retention\.ms=60000 │ 20\d\d-")

    async def test_describe(self):
        await create_topic(self.bootstrap, "described", 2)
        await in_thread(produce_segments, self.bootstrap, "described", [[(b"a", 0), (b"b", 0)], [(b"c", 0)]])
        document = await self.admin_json("topics", "describe", "described")
        self.assertEqual(document["topic_id"], str(self.broker.topics["described"].topic_id))
        first, second = document["partitions"]
        log = self.broker.logs["described", 0]
        self.assertEqual(first, {
            "partition": 0, "owner": self.broker.node_id, "leader_epoch": log.leader_epoch, "log_start_offset": 0,
            "high_watermark": 3, "segments": 2, "bytes": sum(s.size for s in log.state.segments),
        })
        self.assertEqual((second["high_watermark"], second["segments"], second["bytes"]), (0, 0, 0))
        table = (await self.admin("topics", "describe", "described")).stdout
        self.assertIn("configs: defaults", table)
        self.assertRegex(table, rf"│ +0 │ +{self.broker.node_id} │ +{log.leader_epoch} │ +0 │ +3 │ +2 │ +\d+ │")
        await self.refused("topics", "describe", "nowhere", says="no topic 'nowhere'")

    async def test_alter_config(self):
        await create_topic(self.bootstrap, "tuned", **{"retention.ms": "60000"})
        result = await self.admin("topics", "alter-config", "tuned", "--set", "retention.bytes=1048576",
                                  "--set", "segment.bytes=65536", "--delete", "retention.ms")
        self.assertIn("topic tuned configs: retention.bytes=1048576, segment.bytes=65536", result.stdout)
        await until(lambda: self.broker.topics["tuned"].configs == {"retention.bytes": "1048576",
                                                                     "segment.bytes": "65536"},
                    what="the broker sees the new configs")
        await self.refused("topics", "alter-config", "tuned", "--set", "cleanup.policy=compact",
                           says="cleanup.policy: compacted topics are not supported: segments are never rewritten")
        await self.refused("topics", "alter-config", "tuned", "--delete", "no.such", says="unknown topic config")
        await self.refused("topics", "alter-config", "missing", "--set", "retention.ms=1", says="no topic 'missing'")
        usage = await self.admin("topics", "alter-config", "tuned", "--set", "retention.ms", exit_code=2)
        self.assertIn("'retention.ms' is not NAME=VALUE", usage.stderr)
        self.assertEqual((await self.broker.metadata.topics())["tuned"].configs,
                         {"retention.bytes": "1048576", "segment.bytes": "65536"})

    async def test_add_partitions(self):
        await create_topic(self.bootstrap, "growing")
        result = await self.admin("topics", "add-partitions", "growing", "--total", "4")
        self.assertIn("topic growing now has 4 partitions", result.stdout)
        await until(lambda: ("growing", 3) in self.broker.logs, what="the broker claims growing-3")
        await self.refused("topics", "add-partitions", "growing", "--total", "2",
                           says="topic growing has 4 partitions: --total must be more")
        await self.refused("topics", "add-partitions", "missing", "--total", "2", says="no topic 'missing'")

    async def test_delete_removes_the_objects(self):
        await create_topic(self.bootstrap, "doomed")
        await in_thread(produce_segments, self.bootstrap, "doomed", [[(b"x", 0)], [(b"y", 0)]])
        prefix = topic_prefix("doomed", self.broker.topics["doomed"].topic_id)

        async def four_objects():  # indexes may land just after the acks
            return len(await self.broker.objects.list(prefix)) == 4

        await until(four_objects, what="two segments with their indexes")
        result = await self.admin("topics", "delete", "doomed")
        self.assertIn("deleted topic doomed and its 4 objects", result.stdout)
        self.assertEqual(await self.broker.objects.list(prefix), [])
        await until(lambda: "doomed" not in self.broker.topics, what="the broker forgets doomed")
        self.assertNotIn(("doomed", 0), self.broker.logs)
        await self.refused("topics", "delete", "doomed", says="no topic 'doomed'")

    async def test_create_refusals(self):
        await create_topic(self.bootstrap, "taken")
        await self.refused("topics", "create", "taken", says="topic 'taken' already exists")
        await self.refused("topics", "create", "bad/name", says="has characters other than")
        await self.refused("topics", "create", "compacted", "-c", "cleanup.policy=compact",
                           says="compacted topics are not supported")
        usage = await self.admin("topics", "create", "zero", "--partitions", "0", exit_code=2)
        self.assertIn("--partitions", usage.stderr)
        self.assertEqual(sorted(await self.broker.metadata.topics()), ["taken"])


class EmbeddedTopicsTests(TopicsContract, AdminCase):
    async def test_a_wrong_data_dir_is_one_line(self):
        self.location = ["--data-dir", self.mktemp()]
        await self.refused("topics", "list", says="no metadata store at")


class S3TopicsTests(TopicsContract, S3Stores, AdminCase):
    pass


class EtcdTopicsTests(TopicsContract, EtcdStores, AdminCase):
    pass
