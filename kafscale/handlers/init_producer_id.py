"""InitProducerId, v0-6: producer ids for idempotent producers.

Any broker can answer (idempotence needs no coordinator): a new producer
gets a new id at epoch 0, and a producer bumping its epoch after an error
(KIP-360, v3+) keeps its id with the next epoch. Ids need no metadata-store
write (see :mod:`kafscale.storage.producer_ids`); the partitions keep the
sequence state (:mod:`kafscale.storage.producer_state`).

A transactional id goes to its transaction coordinator
(kafscale.coordinator.transactions), which fences the producer's earlier
instances. On a broker run without transactions it is refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which Kafka's clients (Java,
kafka-python, librdkafka) treat as fatal with a message naming the
transactional id, where a retriable coordinator error would have them retry
until their timeout.

Versions: v2 is the first flexible version; v3 adds the producer id and
epoch to bump; v4-6 add error codes (PRODUCER_FENCED, TRANSACTION_ABORTABLE)
and two-phase commit (KIP-939) that concern transactions only.
"""

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from kafscale.storage.producer_ids import ProducerIdGenerator

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# Kafka counts an epoch of Short.MAX_VALUE - 1 as exhausted: a bump from
# there starts over with a new id.
LAST_EPOCH = 0x7FFF - 1

# One per process: brokers sharing a process (tests) draw from one counter,
# so their ids differ even under the same node id.
_producer_ids = ProducerIdGenerator()


async def handle(request):
    body = request.body
    if body["transactional_id"] is not None:
        if not authorization.allowed(request, Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                                     body["transactional_id"]):
            return _refused(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    elif not (authorization.allowed(request, Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER)
              or request.authorizer.may_write_some_topic(request.principal, request.client_host)):
        # KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the
        # cluster, or WRITE on some topic.
        return _refused(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    producer_id = body.get("producer_id", NO_PRODUCER_ID)
    epoch = body.get("producer_epoch", NO_PRODUCER_EPOCH)
    if (producer_id == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        # Both or neither: a bump names the producer exactly.
        return _refused(ErrorCode.INVALID_REQUEST)
    if producer_id < NO_PRODUCER_ID or epoch < NO_PRODUCER_EPOCH:
        return _refused(ErrorCode.INVALID_REQUEST)
    if body["transactional_id"] is not None:
        if request.transactions is None or body.get("enable_2pc"):
            return _refused(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        try:
            producer_id, epoch = await request.transactions.init_producer_id(
                body["transactional_id"], body["transaction_timeout_ms"], producer_id, epoch)
        except REFUSALS as e:
            return _refused(kafka_error(e).code)
        return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "producer_id": producer_id,
                "producer_epoch": epoch}
    if producer_id == NO_PRODUCER_ID or epoch >= LAST_EPOCH:
        producer_id, epoch = _producer_ids.next_id(request.view.node_id), 0
    else:
        epoch += 1
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "producer_id": producer_id, "producer_epoch": epoch}


def _refused(error):
    return {"throttle_time_ms": 0, "error_code": error, "producer_id": NO_PRODUCER_ID,
            "producer_epoch": NO_PRODUCER_EPOCH}
