import os
import tempfile

from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.acls import AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType
from kafscale.security.authorizer import AclAuthorizer, AllowEveryone
from tests.support.waiting import eventually


def b(resource_type, name, operation, permission=Permission.ALLOW, principal="User:alice",
      pattern=PatternType.LITERAL):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def bits(*operations):
    return sum(1 << operation for operation in operations)


class AclAuthorizerTests(unittest.TestCase):
    async def setUp(self):
        path = os.path.join(tempfile.mkdtemp(prefix="kafscale-authorizer-"), "metadata.sqlite")
        self.store = self.started(EmbeddedMetadataStore(path, poll_interval=0.1))
        # Another process's store on the same file: kafscale-admin, say.
        self.other = self.started(EmbeddedMetadataStore(path, poll_interval=0.1))
        self.authorizer = AclAuthorizer(self.store, super_users=["User:admin"])
        self.authorizer.startService()
        self.addCleanup(self.authorizer.stopService)
        await self.authorizer.load()

    def started(self, store):
        store.startService()
        self.addCleanup(store.stopService)
        return store

    def allowed(self, principal, operation, resource_type, name):
        return self.authorizer.authorize(principal, "127.0.0.1", operation, resource_type, name)

    async def test_follows_changes_made_elsewhere_within_a_second(self):
        self.assertFalse(self.allowed("User:alice", Operation.WRITE, ResourceType.TRANSACTIONAL_ID, "tx"))
        await self.other.create_acls([b(ResourceType.TRANSACTIONAL_ID, "tx", Operation.WRITE)])
        took = await eventually(lambda: self.allowed("User:alice", Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                                                     "tx"))
        self.assertLess(took, 1.0)
        await self.other.delete_acls([AclFilter()])
        await eventually(lambda: not self.allowed("User:alice", Operation.WRITE, ResourceType.TRANSACTIONAL_ID, "tx"),
                         timeout=1.0)

    async def test_own_changes_hold_at_once(self):
        await self.authorizer.create_acls([b(ResourceType.GROUP, "billing", Operation.READ)])
        self.assertTrue(self.allowed("User:alice", Operation.DESCRIBE, ResourceType.GROUP, "billing"))
        self.assertEqual(await self.authorizer.delete_acls([AclFilter(resource_type=ResourceType.GROUP)]),
                         [[b(ResourceType.GROUP, "billing", Operation.READ)]])
        self.assertFalse(self.allowed("User:alice", Operation.DESCRIBE, ResourceType.GROUP, "billing"))

    async def test_super_users_and_authorized_operations(self):
        await self.authorizer.create_acls([b(ResourceType.TOPIC, "orders", Operation.ALL, Permission.DENY,
                                             principal="User:*")])
        self.assertTrue(self.allowed("User:admin", Operation.DELETE, ResourceType.TOPIC, "orders"))
        self.assertEqual(self.authorizer.authorized_operations("User:alice", "h", ResourceType.TOPIC, "orders"), 0)
        await self.authorizer.create_acls([b(ResourceType.TRANSACTIONAL_ID, "tx", Operation.WRITE)])
        self.assertEqual(self.authorizer.authorized_operations("User:alice", "h", ResourceType.TRANSACTIONAL_ID, "tx"),
                         bits(Operation.WRITE, Operation.DESCRIBE))
        self.assertEqual(AllowEveryone().authorized_operations("User:x", "h", ResourceType.GROUP, "g"),
                         bits(Operation.READ, Operation.DELETE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS,
                              Operation.ALTER_CONFIGS))

    async def test_may_write_some_topic(self):
        self.assertFalse(self.authorizer.may_write_some_topic("User:alice", "h"))
        await self.authorizer.create_acls([b(ResourceType.TOPIC, "orders-", Operation.WRITE,
                                             pattern=PatternType.PREFIXED)])
        self.assertTrue(self.authorizer.may_write_some_topic("User:alice", "h"))
        self.assertFalse(self.authorizer.may_write_some_topic("User:bob", "h"))
        await self.authorizer.create_acls([b(ResourceType.TOPIC, "*", Operation.ALL, Permission.DENY)])
        self.assertFalse(self.authorizer.may_write_some_topic("User:alice", "h"))

    async def test_allow_everyone_if_no_acl_found(self):
        authorizer = AclAuthorizer(self.store, allow_everyone_if_no_acl_found=True)
        await authorizer.load()
        self.addCleanup(authorizer.stopService)
        self.assertTrue(authorizer.authorize("User:bob", "h", Operation.READ, ResourceType.TOPIC, "orders"))
        await authorizer.create_acls([b(ResourceType.TOPIC, "ord", Operation.READ, pattern=PatternType.PREFIXED)])
        self.assertFalse(authorizer.authorize("User:bob", "h", Operation.READ, ResourceType.TOPIC, "orders"))
        self.assertTrue(authorizer.authorize("User:bob", "h", Operation.READ, ResourceType.TOPIC, "payments"))


