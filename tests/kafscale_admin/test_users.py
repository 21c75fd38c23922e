"""``kafscale-admin users``: credentials written straight into the metadata
store (embedded or etcd), usable by a SASL listener, even before any broker
ran."""

from twisted.internet.threads import deferToThread

from kafscale.security.scram import password_matches
from tests.support.admin import AdminCase, EtcdStores
from tests.support.brokers import in_thread
from tests.support.clients import produce
from tests.support.tls import start_secure_broker


class UsersContract:
    async def test_set_list_and_delete(self):
        await self.admin("users", "set", "alice", "--password-stdin", input="first\n")
        await self.admin("users", "set", "alice", "--password-stdin", "--mechanism", "SCRAM-SHA-512",
                         "--iterations", "8192", input="second\n")
        self.assertEqual(await self.admin_json("users", "list"), [
            {"user": "alice", "mechanism": "SCRAM-SHA-256", "iterations": 4096},
            {"user": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 8192},
        ])
        stored = await self.broker.metadata.scram_credentials("alice")
        self.assertTrue(await deferToThread(password_matches, stored["SCRAM-SHA-256"], "first"))
        self.assertTrue(await deferToThread(password_matches, stored["SCRAM-SHA-512"], "second"))
        self.assertFalse(await deferToThread(password_matches, stored["SCRAM-SHA-512"], "first"))
        await self.admin("users", "delete", "alice", "--mechanism", "SCRAM-SHA-256")
        self.assertEqual([row["mechanism"] for row in await self.admin_json("users", "list")], ["SCRAM-SHA-512"])
        await self.admin("users", "delete", "alice")
        self.assertIn("no users", (await self.admin("users", "list")).stdout)
        await self.refused("users", "delete", "alice", says="no such user: alice")
        await self.refused("users", "set", "bob", "--password-stdin", input="\n", says="empty password")


class EmbeddedUsersTests(UsersContract, AdminCase):
    async def test_the_first_user_before_any_broker(self):
        data_dir = self.mktemp()
        self.location = ["--data-dir", data_dir]
        await self.admin("users", "set", "admin", "--password-stdin", input="admin-secret\n")
        _, bootstraps = await start_secure_broker(self, None, "--data-dir", data_dir)
        settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": "admin", "sasl.password": "admin-secret"}
        self.assertEqual(await in_thread(produce, bootstraps["SASL_PLAINTEXT"], "t", [(None, b"x", None, 0)],
                                         **settings), [(0, 0)])


class EtcdUsersTests(UsersContract, EtcdStores, AdminCase):
    pass
