"""DeleteGroups at every version on the wire: a busy group is refused, an
unknown one not found, an empty one deleted."""

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.groups import GroupWireTestCase, busy_and_empty_groups


class DeleteGroupsTests(GroupWireTestCase):
    async def test_every_version(self):
        def run():
            connection = self.connection()
            busy_and_empty_groups(self, connection)

            for version in range(3):
                deleted = connection.request(ApiKey.DELETE_GROUPS, version, {"groups_names": ["busy", "unknown"]})
                self.assertEqual([(r["group_id"], r["error_code"]) for r in deleted["results"]],
                                 [("busy", ErrorCode.NON_EMPTY_GROUP), ("unknown", ErrorCode.GROUP_ID_NOT_FOUND)])
            deleted = connection.request(ApiKey.DELETE_GROUPS, 2, {"groups_names": ["empty"]})
            self.assertEqual(deleted["results"], [{"group_id": "empty", "error_code": ErrorCode.NONE}])
            listed = connection.request(ApiKey.LIST_GROUPS, 0, {})
            self.assertEqual([g["group_id"] for g in listed["groups"]], ["busy"])

        await in_thread(run)
