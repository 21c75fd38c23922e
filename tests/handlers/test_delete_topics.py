"""DeleteTopics through the admin client and the wire: the objects go, a
topic created again under the name starts clean, unknown names and ids."""

from confluent_kafka.admin import AdminClient, NewTopic
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import consume, produce
from tests.support.topics import create_topics
from tests.support.waiting import sleep
from tests.support.wire import Connection


class DeleteTopicsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_delete_removes_objects_and_recreate_starts_clean(self):
        await in_thread(create_topics, self.bootstrap, NewTopic("gone", 2))
        await in_thread(produce, self.bootstrap, "gone", [(None, b"old %d" % i, None, i % 2) for i in range(20)])
        old_id = self.broker.topics["gone"].topic_id
        # A format-1 segment, as brokers wrote them before shared objects:
        # under the topic's prefix, it goes with the topic. (Shared objects
        # are garbage collection's to delete.)
        await self.broker.objects.put(f"gone/{old_id.hex}/0/segment-{0:020d}-1-0.kfs", b"old")

        def delete(name):
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            admin.delete_topics([name], request_timeout=15)[name].result(20)

        await in_thread(delete, "gone")
        self.assertNotIn("gone", self.broker.topics)
        for _ in range(50):
            if not await self.broker.objects.list("gone/"):
                break
            await sleep(0.1)
        self.assertEqual(await self.broker.objects.list("gone/"), [])

        await in_thread(create_topics, self.bootstrap, NewTopic("gone", 1))
        self.assertNotEqual(self.broker.topics["gone"].topic_id, old_id)
        self.assertEqual(self.broker.logs[("gone", 0)].high_watermark, 0)
        await in_thread(produce, self.bootstrap, "gone", [(None, b"new", None, 0)])
        got = await in_thread(consume, self.bootstrap, "gone", [0], 1)
        self.assertEqual([m.value() for m in got], [b"new"])

    async def test_delete_unknown_and_by_id(self):
        import uuid

        await in_thread(create_topics, self.bootstrap, NewTopic("by-id", 1))
        topic_id = self.broker.topics["by-id"].topic_id

        def ask(topics):
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.DELETE_TOPICS, 6, {"topics": topics, "timeout_ms": 5000})["responses"]
            finally:
                conn.close()

        responses = await in_thread(ask, [{"name": None, "topic_id": topic_id},
                                          {"name": None, "topic_id": uuid.uuid4()},
                                          {"name": "never-was", "topic_id": uuid.UUID(int=0)}])
        self.assertEqual([(r["name"], r["error_code"]) for r in responses],
                         [("by-id", ErrorCode.NONE), (None, ErrorCode.UNKNOWN_TOPIC_ID),
                          ("never-was", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])
