from twisted.trial import unittest

from kafscale.metadata.acls import (
    AclBinding,
    AclFilter,
    AclIndex,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    checked_binding,
    decide,
)


def b(name, operation=Operation.READ, permission=Permission.ALLOW, pattern=PatternType.LITERAL,
      principal="User:alice", host="*", resource_type=ResourceType.TOPIC):
    return AclBinding(resource_type, name, pattern, principal, host, operation, permission)


class CheckedBindingTests(unittest.TestCase):
    def test_valid(self):
        self.assertEqual(checked_binding(2, "orders", 4, "User:alice", "*", 3, 3),
                         b("orders", pattern=PatternType.PREFIXED))

    def test_refused(self):
        for fields in [(1, "x", 3, "User:a", "*", 3, 3),    # ANY resource type
                       (2, "x", 2, "User:a", "*", 3, 3),    # MATCH pattern
                       (2, "x", 3, "User:a", "*", 1, 3),    # ANY operation
                       (2, "x", 3, "User:a", "*", 3, 1),    # ANY permission
                       (2, "x", 3, "alice", "*", 3, 3),     # not TYPE:NAME
                       (2, "", 3, "User:a", "*", 3, 3),     # no name
                       (4, "other", 3, "User:a", "*", 3, 3),  # cluster not kafka-cluster
                       (2, "*", 4, "User:a", "*", 3, 3),    # prefixed wildcard
                       (2, "x", 3, "User:a", "", 3, 3),     # no host
                       (99, "x", 3, "User:a", "*", 3, 3)]:  # unknown code
            with self.assertRaises(InvalidAcl, msg=str(fields)):
                checked_binding(*fields)


class FilterTests(unittest.TestCase):
    def test_match_finds_what_applies_to_a_resource(self):
        bindings = [b("orders"), b("*"), b("ord", pattern=PatternType.PREFIXED), b("orders-eu"),
                    b("x", pattern=PatternType.PREFIXED)]
        matching = AclFilter(ResourceType.TOPIC, "orders", PatternType.MATCH)
        self.assertEqual([x for x in bindings if matching.matches(x)], bindings[:3])
        literal = AclFilter(ResourceType.TOPIC, "orders", PatternType.LITERAL)
        self.assertEqual([x for x in bindings if literal.matches(x)], bindings[:1])
        self.assertEqual([x for x in bindings if AclFilter(pattern_type=PatternType.PREFIXED).matches(x)],
                         [bindings[2], bindings[4]])

    def test_fields(self):
        binding = b("orders", host="10.0.0.1")
        self.assertTrue(AclFilter(principal="User:alice", host="10.0.0.1").matches(binding))
        self.assertFalse(AclFilter(principal="User:bob").matches(binding))
        self.assertFalse(AclFilter(operation=Operation.WRITE).matches(binding))
        self.assertFalse(AclFilter(permission=Permission.DENY).matches(binding))
        self.assertFalse(AclFilter(resource_type=ResourceType.GROUP).matches(binding))
        with self.assertRaises(InvalidAcl):
            AclFilter.of(0, None, 1, None, None, 1, 1)


class DecideTests(unittest.TestCase):
    def test_implications(self):
        for granted, asked, allowed in [(Operation.READ, Operation.DESCRIBE, True),
                                        (Operation.WRITE, Operation.DESCRIBE, True),
                                        (Operation.DELETE, Operation.DESCRIBE, True),
                                        (Operation.ALTER, Operation.DESCRIBE, True),
                                        (Operation.ALTER_CONFIGS, Operation.DESCRIBE_CONFIGS, True),
                                        (Operation.ALL, Operation.CREATE, True),
                                        (Operation.DESCRIBE, Operation.READ, False),
                                        (Operation.READ, Operation.WRITE, False),
                                        (Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS, False)]:
            self.assertEqual(decide([b("t", granted)], "User:alice", "h", asked), allowed, (granted, asked))

    def test_deny_wins_and_is_not_implied(self):
        self.assertFalse(decide([b("t", Operation.ALL), b("t", Operation.READ, Permission.DENY)],
                                "User:alice", "h", Operation.READ))
        self.assertFalse(decide([b("t", Operation.READ), b("t", Operation.ALL, Permission.DENY, principal="User:*")],
                                "User:alice", "h", Operation.READ))
        # Denying READ does not deny DESCRIBE, which WRITE allows.
        self.assertTrue(decide([b("t", Operation.WRITE), b("t", Operation.READ, Permission.DENY)],
                               "User:alice", "h", Operation.DESCRIBE))

    def test_principal_and_host(self):
        self.assertTrue(decide([b("t", principal="User:*")], "User:bob", "h", Operation.READ))
        self.assertFalse(decide([b("t", host="10.0.0.1")], "User:alice", "10.0.0.2", Operation.READ))
        self.assertTrue(decide([b("t", host="10.0.0.1")], "User:alice", "10.0.0.1", Operation.READ))


class IndexTests(unittest.TestCase):
    def test_covering(self):
        index = AclIndex([b("orders"), b("*"), b("ord", pattern=PatternType.PREFIXED), b("other"),
                          b("orders", resource_type=ResourceType.GROUP)])
        self.assertEqual(sorted(index.covering(ResourceType.TOPIC, "orders")),
                         sorted([b("orders"), b("*"), b("ord", pattern=PatternType.PREFIXED)]))
        self.assertEqual(index.covering(ResourceType.TOPIC, "x"), [b("*")])
        self.assertEqual(index.covering(ResourceType.TRANSACTIONAL_ID, "orders"), [])
