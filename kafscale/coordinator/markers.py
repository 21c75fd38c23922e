"""Writing a transaction's markers: each partition's marker is appended by
the partition's owner, through its fenced commit path. A partition this
broker owns is written here; another broker's is asked for with
WriteTxnMarkers."""

from kafscale.coordinator.broker_client import BrokerUnreachable
from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.storage.errors import PartitionError, StaleProducerEpoch

log = logger("kafscale.coordinator.markers")

WRITE_TXN_MARKERS_VERSION = 1

# What an owner may answer that means the marker need not be written (again):
# the topic is gone, or the partition knows a newer epoch of the producer,
# whose own transaction ended this one.
_DONE = (ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_PRODUCER_EPOCH)


class MarkerWriter:
    """``logs`` (the broker's PartitionLogs) and ``topics`` tell which
    partitions are here and who owns the others; ``view`` where that broker
    listens: its listener named ``listener`` (the inter-broker listener; its
    first when None or when it has no listener of that name); ``client`` (a
    BrokerClient) carries the requests."""

    def __init__(self, logs, topics, view, client, listener=None):
        self.logs = logs
        self.topics = topics
        self.view = view
        self.client = client
        self.listener = listener

    async def write(self, topic, partition, producer_id, producer_epoch, commit):
        """-> True once the marker is committed (or need not be), False when
        it could not be now (no owner, an owner change, a failed flush):
        the caller tries again."""
        partition_log = self.logs.get((topic, partition))
        if partition_log is not None:
            try:
                await partition_log.write_marker(producer_id, producer_epoch, commit)
            except StaleProducerEpoch as error:
                log.info("marker of {topic}-{partition} not needed: {error}", topic=topic, partition=partition,
                         error=error)
            except PartitionError as error:
                log.info("marker of {topic}-{partition} not written yet: {error}", topic=topic,
                         partition=partition, error=error)
                return False
            return True
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < info.partitions:
            return True
        leader_id, _ = self.logs.leader_of(topic, partition)
        broker = self.view.broker(leader_id) if leader_id >= 0 else None
        if broker is None:
            return False
        body = {"markers": [{"producer_id": producer_id, "producer_epoch": producer_epoch,
                             "transaction_result": commit, "coordinator_epoch": 0,
                             "topics": [{"name": topic, "partition_indexes": [partition]}]}]}
        host, port = broker.address(self.listener)
        try:
            answer = await self.client.request(host, port, ApiKey.WRITE_TXN_MARKERS,
                                               WRITE_TXN_MARKERS_VERSION, body)
        except BrokerUnreachable as error:
            log.info("marker of {topic}-{partition} not written yet: {error}", topic=topic, partition=partition,
                     error=error)
            return False
        codes = [p["error_code"] for m in answer["markers"] for t in m["topics"] for p in t["partitions"]]
        return bool(codes) and all(code in _DONE for code in codes)
