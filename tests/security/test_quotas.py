from twisted.internet.task import Clock
from twisted.trial import unittest

from kafscale.security.quotas import ClientQuotas, InvalidQuota, QuotaSettings, checked_entity, checked_value

ALICE_CLI = (("client-id", "cli"), ("user", "alice"))


class QuotaForTests(unittest.TestCase):
    def test_kafka_precedence(self):
        quotas = ClientQuotas(None)
        levels = [
            ((("client-id", "cli"), ("user", "alice")), "user and client"),
            ((("client-id", None), ("user", "alice")), "user and default client"),
            ((("user", "alice"),), "user"),
            ((("client-id", "cli"), ("user", None)), "default user and client"),
            ((("client-id", None), ("user", None)), "default user and default client"),
            ((("user", None),), "default user"),
            ((("client-id", "cli"),), "client"),
            ((("client-id", None),), "default client"),
        ]
        quotas.quotas = {entity: {"request_rate": float(i + 1)} for i, (entity, _) in enumerate(levels)}
        for i, (entity, level) in enumerate(levels):
            quota, (counted_as, user, client) = quotas.quota_for("request_rate", "alice", "cli")
            self.assertEqual((quota, counted_as), (float(i + 1), entity), level)
            # A user's quota is shared by its clients; a client's by its users.
            self.assertEqual(user is not None, any(kind == "user" for kind, _ in entity), level)
            self.assertEqual(client is not None, any(kind == "client-id" for kind, _ in entity), level)
            del quotas.quotas[entity]
        self.assertEqual(quotas.quota_for("request_rate", "alice", "cli"), (None, None))

    def test_other_keys_do_not_apply(self):
        quotas = ClientQuotas(None)
        quotas.quotas = {ALICE_CLI: {"producer_byte_rate": 1.0}, (("user", None),): {"request_rate": 5.0}}
        self.assertEqual(quotas.quota_for("request_rate", "alice", "cli")[0], 5.0)


class RecordTests(unittest.TestCase):
    def test_throttle_as_long_as_the_rate_takes_to_come_back(self):
        clock = Clock()
        quotas = ClientQuotas(None, QuotaSettings(samples=2, window_seconds=1.0), clock=clock)
        quotas.quotas = {(("user", "alice"),): {"producer_byte_rate": 100.0}}
        self.assertEqual(quotas.record("producer_byte_rate", "alice", "a", 100), 0)
        # 300 bytes over at least one second: 200 over a quota of 100, for one second.
        self.assertEqual(quotas.record("producer_byte_rate", "alice", "b", 200), 2000)
        self.assertEqual(quotas.record("producer_byte_rate", "bob", "a", 1000), 0)
        clock.advance(3)
        self.assertEqual(quotas.record("producer_byte_rate", "alice", "a", 100), 0)


class ValidationTests(unittest.TestCase):
    def test_entities_and_values(self):
        self.assertEqual(checked_entity([("user", "alice"), ("client-id", None)]), (("client-id", None), ("user", "alice")))
        for bad in ([], [("ip", "x")], [("user", "a"), ("user", "b")]):
            with self.assertRaises(InvalidQuota):
                checked_entity(bad)
        self.assertEqual(checked_value("request_rate", 3), 3.0)
        for key, value in (("request_percentage", 10), ("producer_byte_rate", 0), ("consumer_byte_rate", -1)):
            with self.assertRaises(InvalidQuota):
                checked_value(key, value)
