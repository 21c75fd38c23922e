"""``kafscale-admin acls`` beside a running broker that enforces ACLs: what
the CLI adds, the broker enforces within a second."""

from kafscale.metadata.acls import Operation, PatternType, Permission, ResourceType
from tests.support.acls import binding
from tests.support.admin import AdminCase, EtcdStores
from tests.support.brokers import in_thread
from tests.support.waiting import eventually
from tests.support.wire import Connection
from kafscale.protocol.messages import ApiKey


def topics_listed(bootstrap):
    connection = Connection(bootstrap)
    try:
        return [t["name"] for t in connection.request(ApiKey.METADATA, 12, {
            "topics": None, "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False})["topics"]]
    finally:
        connection.close()


class AclsContract:
    broker_args = ("--authorizer", "acl")

    async def setUp(self):
        await super().setUp()
        await self.broker.topics.create("orders", 1, {})

    async def test_add_list_remove(self):
        self.assertEqual(await in_thread(topics_listed, self.bootstrap), [])
        await self.admin("acls", "add", "--allow", "User:ANONYMOUS", "--operation", "read", "--operation", "write",
                         "--topic", "ord", "--prefixed")
        await self.admin("acls", "add", "--deny", "User:bob", "--operation", "all", "--cluster", "--host", "10.0.0.9")
        await eventually(lambda: in_thread(topics_listed, self.bootstrap), timeout=1.0,
                         what="the broker follows the CLI's ACL within a second")
        self.assertEqual(set(await self.broker.metadata.acls()), {
            binding(ResourceType.TOPIC, "ord", Operation.READ, pattern_type=PatternType.PREFIXED),
            binding(ResourceType.TOPIC, "ord", Operation.WRITE, pattern_type=PatternType.PREFIXED),
            binding(ResourceType.CLUSTER, "kafka-cluster", Operation.ALL, Permission.DENY, principal="User:bob",
                    host="10.0.0.9"),
        })
        listed = await self.admin_json("acls", "list", "--principal", "User:ANONYMOUS")
        self.assertEqual(sorted(row["operation"] for row in listed), ["READ", "WRITE"])
        self.assertEqual(listed[0]["pattern"], "PREFIXED")
        table = (await self.admin("acls", "list", "--cluster")).stdout
        self.assertRegex(table, r"User:bob +│ DENY +│ ALL +│ 10\.0\.0\.9")
        removed = await self.admin_json("acls", "remove", "--topic", "ord", "--prefixed", "--operation", "write")
        self.assertEqual([row["operation"] for row in removed], ["WRITE"])
        await self.admin("acls", "remove", "--principal", "User:ANONYMOUS")
        await eventually(lambda: in_thread(lambda: topics_listed(self.bootstrap) == []), timeout=1.0)
        self.assertEqual(len(await self.broker.metadata.acls()), 1)

    async def test_refusals(self):
        await self.refused("acls", "add", "--allow", "alice", "--operation", "read", "--topic", "t",
                           says="TYPE:NAME")
        result = await self.admin("acls", "add", "--allow", "User:a", "--operation", "read", exit_code=2)
        self.assertIn("name one resource", result.stderr)
        result = await self.admin("acls", "remove", exit_code=2)
        self.assertIn("say which ACLs", result.stderr)


class EmbeddedAclsTests(AclsContract, AdminCase):
    pass


class EtcdAclsTests(AclsContract, EtcdStores, AdminCase):
    pass


