"""Topics and records through a running broker: create topics with the
admin client, build a Produce body, produce one segment per request, fetch
at an offset, read one broker's view of a cluster."""

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.clients import result_or_error
from tests.support.wire import Connection


async def create_topic(bootstrap, name, partitions=1, **configs):
    def create():
        admin = AdminClient({"bootstrap.servers": bootstrap})
        future = admin.create_topics([NewTopic(name, partitions, config=configs)])[name]
        future.result(20)

    await in_thread(create)


def create_topics(bootstrap, *topics, validate_only=False):
    """-> {name: None or the KafkaError code}"""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(list(topics), validate_only=validate_only, request_timeout=15)
    results = {}
    for name, future in futures.items():
        error = result_or_error(future)
        results[name] = None if error is None else error.code()
    return results


def produce_request(topic, records, acks=-1, partition=0):
    return {"transactional_id": None, "acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}]}


def produce_segments(bootstrap, topic, segments, partition=0):
    """Produce each item of ``segments`` (a list of (value, timestamp ms, 0 for now))
    as one request, flushed before the next: one segment each."""
    # A long linger keeps each item in one batch; flush sends it at once.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "acks": "all"})
    for records in segments:
        for value, timestamp in records:
            producer.produce(topic, value=value, timestamp=timestamp, partition=partition)
        if producer.flush(20):
            raise AssertionError("records left unacknowledged")


def fetch_at(bootstrap, topic, offset):
    connection = Connection(bootstrap)
    try:
        body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
                "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
                "topics": [{"topic": topic, "partitions": [
                    {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
                     "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]}
        return connection.request(ApiKey.FETCH, 11, body)["responses"][0]["partitions"][0]
    finally:
        connection.close()


def cluster_view(bootstrap, topic):
    """What one broker's Metadata says: ({live node id: port}, {partition:
    (leader, leader epoch)})."""
    connection = Connection(bootstrap)
    try:
        body = connection.request(ApiKey.METADATA, 9, {
            "topics": [{"name": topic}], "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": False, "include_topic_authorized_operations": False,
        })
    finally:
        connection.close()
    leaders = {p["partition_index"]: (p["leader_id"], p["leader_epoch"])
               for t in body["topics"] for p in t["partitions"]}
    return {b["node_id"]: b["port"] for b in body["brokers"]}, leaders
