"""ListGroups at every version on the wire: a busy and an empty group, by
state and by type."""

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.groups import GroupWireTestCase, busy_and_empty_groups


class ListGroupsTests(GroupWireTestCase):
    async def test_every_version(self):
        def run():
            connection = self.connection()
            busy_and_empty_groups(self, connection)

            for version in range(6):
                listed = connection.request(ApiKey.LIST_GROUPS, version, {"states_filter": [], "types_filter": []})
                self.assertEqual(listed["error_code"], ErrorCode.NONE)
                self.assertEqual([(g["group_id"], g["protocol_type"]) for g in listed["groups"]],
                                 [("busy", "consumer"), ("empty", "consumer")])
                if version >= 4:
                    self.assertEqual([g["group_state"] for g in listed["groups"]], ["Stable", "Empty"])
                    stable = connection.request(ApiKey.LIST_GROUPS, version, {"states_filter": ["stable"]})
                    self.assertEqual([g["group_id"] for g in stable["groups"]], ["busy"])
                if version >= 5:
                    self.assertEqual({g["group_type"] for g in listed["groups"]}, {"classic"})
                    for types, expected in ((["consumer"], []), (["Classic"], ["busy", "empty"])):
                        typed = connection.request(ApiKey.LIST_GROUPS, 5, {"types_filter": types})
                        self.assertEqual([g["group_id"] for g in typed["groups"]], expected)

        await in_thread(run)
