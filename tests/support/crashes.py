"""A broker process on etcd and a moto bucket that a test kills with
SIGKILL while it works, and the checks every such test makes after."""


from tests.support.admin import AdminCase
from tests.support.brokers import BrokerProcess, in_thread
from tests.support.etcd_server import etcd_cluster
from tests.support.s3_server import s3_server, s3_store
from tests.support.waiting import eventually

# Merge (and compact) at once, every 50 ms, and delete what was replaced
# 100 ms later: a kill at any moment is likely to land in a rewrite or its
# deletes.
REWRITING = ["--merge-delay-ms", "0", "--merge-check-interval-ms", "50", "--merge-delete-delay-ms", "100",
             "--lease-ttl", "2"]


class KilledBrokerCase(AdminCase):
    """A broker on etcd and moto started with ``options``; kafscale-admin
    pointed at the same stores."""

    options = REWRITING

    async def setUp(self):
        etcd = etcd_cluster("killed")
        server = s3_server()
        store = self.s3 = await s3_store(self, server)
        s3 = ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]
        self.env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        self.broker = BrokerProcess(*etcd, *s3, *self.options, env=self.env)
        self.location = [*etcd, *s3]
        await in_thread(self.broker.start)
        self.addCleanup(lambda: in_thread(self.broker.stop))

    def admin_env(self):
        return self.env

    async def kill_while_producing(self, producer, between, kills=3):
        """Kill and restart the broker ``kills`` times, ``between`` more
        records acknowledged before each kill and after the last, then stop
        ``producer``, which must have had no record refused."""
        for _ in range(kills):
            acked = len(producer.acked)
            await eventually(lambda: len(producer.acked) >= acked + between, timeout=60, what="records acknowledged")
            await in_thread(self.broker.kill)
            await in_thread(self.broker.start)
        await eventually(lambda: len(producer.acked) >= acked + 2 * between, timeout=60,
                         what="records after restarts")
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])

    async def assertOnlyOrphansThenCollect(self):
        """With the broker stopped nothing is in flight: every object no
        manifest names is an orphan of a rewrite or a delete that a kill cut
        short, nothing is missing or damaged, and gc removes them all."""
        await in_thread(self.broker.stop)
        orphans = sorted(o["key"] for o in (await self.admin_json("segments", "gc", "--grace", "0"))["orphans"])
        report = await self.admin_json("segments", "verify", "--grace", "0", exit_code=1 if orphans else 0)
        self.assertEqual(sorted((p["problem"], p["key"]) for p in report["problems"]),
                         [("orphan", key) for key in orphans])
        gc = await self.admin_json("segments", "gc", "--grace", "0", "--execute")
        self.assertEqual(sorted(o["key"] for o in gc["orphans"]), orphans)
        self.assertEqual((await self.admin_json("segments", "verify", "--grace", "0"))["problems"], [])
        await in_thread(self.broker.start)
