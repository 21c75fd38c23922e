"""WriteTxnMarkers, v1: the transaction coordinator of another broker asks
this one to write COMMIT or ABORT markers to partitions it owns, each through
the partition's fenced commit path, answered once committed. Brokers send
it to each other (kafscale.coordinator.markers); clients have no use for it.
As in Kafka, it needs CLUSTER_ACTION on the cluster (so, with ACLs, the
brokers' own principal must be a super user or be granted it); without it
every partition is answered CLUSTER_AUTHORIZATION_FAILED and nothing written.

Versions: v1 (the first flexible version) is the oldest in the schemas;
v2's transaction version (KIP-1228) is not spoken.
"""

from twisted.internet.defer import DeferredList

from kafscale.handlers.authorization import allowed
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    if not allowed(request, Operation.CLUSTER_ACTION, ResourceType.CLUSTER):
        return {"markers": [
            {"producer_id": marker["producer_id"], "topics": [
                {"name": topic["name"], "partitions": [
                    {"partition_index": p, "error_code": ErrorCode.CLUSTER_AUTHORIZATION_FAILED}
                    for p in topic["partition_indexes"]]}
                for topic in marker["topics"]]}
            for marker in request.body["markers"]]}
    answers = []
    for marker in request.body["markers"]:
        topics = []
        for topic in marker["topics"]:
            partitions = [{"partition_index": p, "error_code": ErrorCode.NONE} for p in topic["partition_indexes"]]
            writes = []
            for answer in partitions:
                try:
                    partition_log = request.logs.log_for(topic["name"], answer["partition_index"])
                    writes.append((answer, partition_log.write_marker(
                        marker["producer_id"], marker["producer_epoch"], marker["transaction_result"],
                        marker["coordinator_epoch"])))
                except REFUSALS as e:
                    answer["error_code"] = kafka_error(e).code
            results = await DeferredList([written for _, written in writes], consumeErrors=True)
            for (answer, _), (ok, value) in zip(writes, results):
                if not ok:
                    answer["error_code"] = (kafka_error(value.value).code if isinstance(value.value, REFUSALS)
                                            else ErrorCode.UNKNOWN_SERVER_ERROR)
            topics.append({"name": topic["name"], "partitions": partitions})
        answers.append({"producer_id": marker["producer_id"], "topics": topics})
    return {"markers": answers}
