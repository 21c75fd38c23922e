"""``kafscale-admin quotas`` beside a running broker, which follows them."""

from tests.support.admin import AdminCase, EtcdStores
from tests.support.waiting import eventually


class QuotasContract:
    async def test_set_list_remove(self):
        await self.admin("quotas", "set", "--user", "alice", "--client-id", "cli", "--producer-byte-rate", "1048576",
                         "--request-rate", "100")
        await self.admin("quotas", "set", "--default-user", "--consumer-byte-rate", "2048")
        await eventually(lambda: self.broker.quotas.quota_for("consumer_byte_rate", "bob", "x")[0] == 2048.0,
                         timeout=1.0, what="the broker follows the CLI's quota within a second")
        self.assertEqual(self.broker.quotas.quota_for("producer_byte_rate", "alice", "cli")[0], 1048576.0)
        listed = await self.admin_json("quotas", "list")
        self.assertEqual(sorted(listed, key=repr), sorted([
            {"user": "alice", "client_id": "cli", "quotas": {"producer_byte_rate": 1048576.0, "request_rate": 100.0}},
            {"user": "<default>", "client_id": None, "quotas": {"consumer_byte_rate": 2048.0}},
        ], key=repr))
        await self.admin("quotas", "remove", "--user", "alice", "--client-id", "cli", "--key", "request_rate")
        await self.admin("quotas", "remove", "--default-user")
        self.assertEqual(await self.broker.metadata.client_quotas(),
                         {(("client-id", "cli"), ("user", "alice")): {"producer_byte_rate": 1048576.0}})

    async def test_refusals(self):
        await self.refused("quotas", "set", "--user", "alice", "--producer-byte-rate", "0", says="must be positive")
        result = await self.admin("quotas", "set", "--producer-byte-rate", "5", exit_code=2)
        self.assertIn("--user", result.stderr)


class EmbeddedQuotasTests(QuotasContract, AdminCase):
    pass


class EtcdQuotasTests(QuotasContract, EtcdStores, AdminCase):
    pass
