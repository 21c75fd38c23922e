"""DeleteTopics, v1-6: remove topics from the metadata store at once; their
objects leave the bucket in the background.

Versions: v0-3 are the same (v0 is not spoken); v4 is the first flexible
version; v5 adds error messages; v6 names each topic by name or by id
(UNKNOWN_TOPIC_ID for an id we do not know).

Departures from Kafka: none that a client sees. A topic created again under
the same name gets a new id, and its objects a new prefix, so the old
topic's objects still being deleted never touch the new one's.
"""

from kafscale.handlers import authorization
from kafscale.handlers.common import NO_TOPIC_ID, known_topic
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation


async def handle(request):
    body = request.body
    if request.api_version < 6:
        wanted = [(name, NO_TOPIC_ID) for name in body["topic_names"]]
    else:
        wanted = [(t["name"], t["topic_id"]) for t in body["topics"]]
    results = []
    for name, topic_id in wanted:
        result = {"name": name, "topic_id": topic_id, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        try:
            if name is None:
                result["name"] = name = known_topic(request.topics, None, topic_id).name
            authorization.check_topic(request, Operation.DELETE, name)
            info = await request.topics.delete(name)
            result["topic_id"] = info.topic_id
        except REFUSALS as e:
            e = kafka_error(e)
            result["error_code"] = e.code
            result["error_message"] = e.message
    return {"throttle_time_ms": 0, "responses": results}
