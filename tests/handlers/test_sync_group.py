"""SyncGroup: the leader's assignment reaches every member of the new
generation when a member joins."""

import time

from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread
from tests.support.groups import GroupWireTestCase, heartbeat, join, join_as_new_member, sync


class SyncGroupTests(GroupWireTestCase):
    async def test_rebalance_when_a_member_joins(self):
        first, second = self.connection(), self.connection()

        def start():
            joined = join_as_new_member(self, first, 9, "pair")
            sync(first, 5, "pair", joined["member_id"], 1, [(joined["member_id"], b"all")])
            return joined["member_id"]

        leader_id = await in_thread(start)
        newcomer = in_thread(join_as_new_member, self, second, 9, "pair")

        def leader_rejoins():
            deadline = time.monotonic() + 10
            while heartbeat(first, 4, "pair", leader_id, 1) != ErrorCode.REBALANCE_IN_PROGRESS:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            return join(first, 9, "pair", member_id=leader_id)

        rejoined = await in_thread(leader_rejoins)
        joined = await newcomer
        self.assertEqual((rejoined["generation_id"], joined["generation_id"]), (2, 2))
        self.assertEqual((rejoined["leader"], joined["leader"]), (leader_id, leader_id))
        self.assertEqual(sorted(m["member_id"] for m in rejoined["members"]), sorted([leader_id, joined["member_id"]]))
        self.assertEqual(joined["members"], [])

        follower_sync = in_thread(sync, second, 5, "pair", joined["member_id"], 2)
        assignments = [(leader_id, b"half 1"), (joined["member_id"], b"half 2")]
        leader_sync = await in_thread(sync, first, 5, "pair", leader_id, 2, assignments)
        self.assertEqual(leader_sync["assignment"], b"half 1")
        self.assertEqual((await follower_sync)["assignment"], b"half 2")
