from twisted.trial import unittest

from kafscale_operator.status import condition


class ConditionTests(unittest.TestCase):
    def test_a_transition_is_dated_and_a_repeat_keeps_the_date(self):
        first = condition(None, "Ready", False, "Starting", "0 of 3", at="2026-01-01T00:00:00Z")
        same = condition(first, "Ready", False, "Starting", "1 of 3", at="2026-01-01T00:01:00Z")
        changed = condition(same, "Ready", True, "Ready", "3 of 3", at="2026-01-01T00:02:00Z")
        self.assertEqual(same, [{"type": "Ready", "status": "False", "reason": "Starting", "message": "1 of 3",
                                 "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        self.assertEqual(changed[0]["lastTransitionTime"], "2026-01-01T00:02:00Z")
        self.assertEqual(changed[0]["status"], "True")

    def test_other_conditions_are_kept(self):
        both = condition(condition(None, "Degraded", None, "Unknown", "?"), "Ready", True, "Ready", "ok")
        self.assertEqual([(c["type"], c["status"]) for c in both], [("Degraded", "Unknown"), ("Ready", "True")])
