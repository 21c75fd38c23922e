"""The broker's Prometheus metrics, in a registry of its own (several
brokers in one process, as in tests, keep theirs apart).

What moves per request or per flush is counted where it happens, through
the narrow observers the layers accept (IObjectStoreRequests,
IMetadataRequests, IFlushObserver, the server's request observer), in
lock-free series (kafscale.metrics.series: all of it runs on the reactor
thread); what is
a state (connections, buffers, partitions owned, the segment cache, groups)
is read when Prometheus scrapes, at no cost in between. Labels are bounded:
API and error names, S3 operations and outcomes, metadata operations; the
only per-group and per-partition series (group lag, members) are capped.
"""

import struct
import time

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from zope.interface import implementer

from kafscale import __version__
from kafscale.metadata.requests import IMetadataRequests
from kafscale.metrics.series import Counter, Histogram
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.storage.flusher import IFlushObserver
from kafscale.storage.interfaces import IObjectStoreRequests

# Latencies from a fast local call to an S3 request that retried.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_INT32 = struct.Struct(">i")
# A record batch: base offset (8), length (4), ..., record count at 57.
_BATCH_LENGTH_AT = 8
_RECORD_COUNT_AT = 57
_BATCH_HEADER = 61


def batches_in(records):
    """(record count, bytes) of the whole batches in a fetch answer's
    ``records`` (a batch cut short by the answer's size limit not counted:
    the client fetches it again)."""
    count = size = 0
    position = 0
    end = len(records)
    while end - position >= _BATCH_HEADER:
        batch = 12 + _INT32.unpack_from(records, position + _BATCH_LENGTH_AT)[0]
        if position + batch > end:
            break
        count += _INT32.unpack_from(records, position + _RECORD_COUNT_AT)[0]
        size += batch
        position += batch
    return count, size


def _errors_in(answer, found):
    """Add to ``found`` every non-zero error code in ``answer`` (a response
    body), where Kafka's responses keep them: at the top and in arrays of
    structs, however deep."""
    code = answer.get("error_code")
    if code:
        found.append(code)
    for value in answer.values():
        if value.__class__ is list and value and value[0].__class__ is dict:
            for item in value:
                _errors_in(item, found)
    return found


def _error_name(code):
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class BrokerMetrics:
    """Every metric of one broker, in ``registry``."""

    def __init__(self, max_group_series=1000):
        self.registry = CollectorRegistry()
        self.max_group_series = max_group_series
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        registry = self.registry

        self.requests = Counter("kafscale_requests", "Kafka requests answered, by API.", ["api"],
                                registry=registry)
        self.request_errors = Counter(
            "kafscale_request_errors", "Error codes in the answers, by API and error (each partition's counts).",
            ["api", "error"], registry=registry)
        self.request_seconds = Histogram("kafscale_request_seconds", "Time from a request's dispatch to its answer.",
                                         ["api"], buckets=LATENCY_BUCKETS, registry=registry)
        self.fetched_records = Counter("kafscale_fetched_records", "Records in the batches fetches answered.",
                                       registry=registry)
        self.fetched_bytes = Counter("kafscale_fetched_bytes", "Bytes of record batches fetches answered.",
                                     registry=registry)

        self.produced_records = Counter("kafscale_produced_records", "Records committed (acknowledged).",
                                        registry=registry)
        self.produced_bytes = Counter("kafscale_produced_bytes", "Bytes of record batches committed.",
                                      registry=registry)
        self.produce_ack_seconds = Histogram(
            "kafscale_produce_ack_seconds", "Time from a batch's append to its acknowledgement (per batch).",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.flush_upload_seconds = Histogram(
            "kafscale_flush_upload_seconds", "Time to store one flush's object.", buckets=LATENCY_BUCKETS,
            registry=registry)
        self.flush_commit_seconds = Histogram(
            "kafscale_flush_commit_seconds", "Time to commit one flush's segments in the metadata store.",
            buckets=LATENCY_BUCKETS, registry=registry)

        self.object_requests = Counter(
            "kafscale_object_store_requests", "Requests sent to the object store (for S3: every HTTP request,"
            " retries and multipart parts included), by S3 operation and outcome.", ["operation", "outcome"],
            registry=registry)
        self.object_sent = Counter("kafscale_object_store_sent_bytes", "Body bytes sent to the object store.",
                                   ["operation"], registry=registry)
        self.object_received = Counter("kafscale_object_store_received_bytes",
                                       "Body bytes received from the object store.", ["operation"], registry=registry)
        self.object_seconds = Histogram("kafscale_object_store_request_seconds", "Object store request latency.",
                                        ["operation"], buckets=LATENCY_BUCKETS, registry=registry)

        self.metadata_requests = Counter(
            "kafscale_metadata_requests", "Metadata store (etcd or embedded) calls, by operation and outcome.",
            ["operation", "outcome"], registry=registry)
        self.metadata_seconds = Histogram("kafscale_metadata_request_seconds", "Metadata store call latency.",
                                          ["operation"], buckets=LATENCY_BUCKETS, registry=registry)

        self.object_store = _ObjectStoreRequests(self)
        self.metadata = _MetadataRequests(self)
        self.flushes = _Flushes(self)
        self.answered = _Requests(self)

    def watch(self, broker, factories, lag):
        """Report ``broker``'s state, the connections of ``factories`` (its
        listeners' KafkaFactory) and the lag ``lag`` (a GroupLag) sampled, at
        each scrape."""
        self.registry.register(_BrokerState(broker, factories, lag, self.max_group_series))


@implementer(IObjectStoreRequests)
class _ObjectStoreRequests:
    def __init__(self, metrics):
        self._metrics = metrics
        # (operation, outcome) -> the children it moves: a labels() lookup
        # costs more than the increments.
        self._children = {}

    def requested(self, operation, outcome, seconds, sent_bytes, received_bytes):
        children = self._children.get((operation, outcome))
        if children is None:
            metrics = self._metrics
            children = self._children[operation, outcome] = (
                metrics.object_requests.labels(operation, outcome), metrics.object_seconds.labels(operation),
                metrics.object_sent.labels(operation), metrics.object_received.labels(operation))
        requests, latency, sent, received = children
        requests.inc()
        latency.observe(seconds)
        if sent_bytes:
            sent.inc(sent_bytes)
        if received_bytes:
            received.inc(received_bytes)


@implementer(IMetadataRequests)
class _MetadataRequests:
    def __init__(self, metrics):
        self._metrics = metrics
        self._children = {}  # (operation, outcome) -> the children it moves

    def requested(self, operation, outcome, seconds):
        children = self._children.get((operation, outcome))
        if children is None:
            metrics = self._metrics
            children = self._children[operation, outcome] = (
                metrics.metadata_requests.labels(operation, outcome), metrics.metadata_seconds.labels(operation))
        children[0].inc()
        children[1].observe(seconds)


@implementer(IFlushObserver)
class _Flushes:
    def __init__(self, metrics):
        self._metrics = metrics

    def flushed(self, upload_seconds, commit_seconds, records, size, waits):
        metrics = self._metrics
        metrics.flush_upload_seconds.observe(upload_seconds)
        metrics.flush_commit_seconds.observe(commit_seconds)
        metrics.produced_records.inc(records)
        metrics.produced_bytes.inc(size)
        observe = metrics.produce_ack_seconds.observe
        for wait in waits:
            observe(wait)


class _Requests:
    """What the server tells of each request it answered."""

    def __init__(self, metrics):
        self._metrics = metrics
        self._by_api = {}  # api key -> (name, requests child, latency child)

    def answered(self, api_key, body, seconds):
        """The request for ``api_key`` was answered with ``body`` (None:
        nothing to send) ``seconds`` after its dispatch."""
        children = self._by_api.get(api_key)
        if children is None:
            metrics = self._metrics
            name = ApiKey(api_key).name.lower()
            children = self._by_api[api_key] = (
                name, metrics.requests.labels(name), metrics.request_seconds.labels(name))
        name, requests, latency = children
        requests.inc()
        latency.observe(seconds)
        if body is None:
            return
        for code in _errors_in(body, []):
            self._metrics.request_errors.labels(name, _error_name(code)).inc()
        if api_key == ApiKey.FETCH:
            count = size = 0
            for topic in body["responses"]:
                for partition in topic["partitions"]:
                    records, length = batches_in(partition["records"] or b"")
                    count += records
                    size += length
            self._metrics.fetched_records.inc(count)
            self._metrics.fetched_bytes.inc(size)

    def started(self):
        """A clock reading for ``answered``'s seconds."""
        return time.monotonic()


class _BrokerState:
    """The broker's state, read at each scrape."""

    def __init__(self, broker, factories, lag, max_group_series):
        self._broker = broker
        self._factories = factories
        self._lag = lag
        self._max_group_series = max_group_series

    def collect(self):
        broker = self._broker
        info = GaugeMetricFamily("kafscale_broker_info", "This broker: its node id and version.",
                                 labels=["node_id", "version"])
        info.add_metric([str(broker.view.node_id), __version__], 1)
        yield info
        yield GaugeMetricFamily("kafscale_broker_ready", "1 once the broker has loaded its state and"
                                " taken its partitions.", value=1 if broker.ready else 0)
        connections = [c for factory in self._factories for c in factory.connections]
        yield GaugeMetricFamily("kafscale_connections", "Client connections open.", value=len(connections))
        yield GaugeMetricFamily("kafscale_requests_in_flight", "Requests dispatched and not yet answered.",
                                value=sum(c.in_flight for c in connections))
        yield GaugeMetricFamily("kafscale_partitions_owned", "Partitions this broker owns.", value=len(broker.logs))
        changes = CounterMetricFamily("kafscale_partition_ownership_changes", "Partitions taken and let go.",
                                      labels=["change"])
        changes.add_metric(["taken"], broker.logs.taken)
        changes.add_metric(["released"], broker.logs.released)
        yield changes
        budget = broker.budget
        yield GaugeMetricFamily("kafscale_produce_buffer_bytes", "Produced bytes waiting for a flush.",
                                value=budget.used)
        yield GaugeMetricFamily("kafscale_produce_buffer_limit_bytes", "Most produced bytes that may wait.",
                                value=budget.max_bytes)
        yield from self._cache(broker.cache)
        yield from self._lease(broker.metadata, broker.reactor)
        yield from self._groups(broker.groups)
        yield from self._compaction(broker)
        yield from self._lag.families()

    def _compaction(self, broker):
        merging = broker.getServiceNamed("merge")
        yield CounterMetricFamily("kafscale_compacted_bytes", "Bytes of segments compaction replaced.",
                                  value=merging.compacted_bytes)
        ratios = GaugeMetricFamily("kafscale_compaction_dirty_ratio", "Dirty bytes over clean and dirty bytes of"
                                   " the compacted partitions owned here, as their last pass saw them.",
                                   labels=["topic", "partition"])
        known = sorted(((log.topic, log.partition), ratio) for log, ratio in list(merging.dirty_ratios.items())
                       if not log.closed)
        for (topic, partition), ratio in known[:self._max_group_series]:
            ratios.add_metric([topic, str(partition)], ratio)
        yield ratios

    def _cache(self, cache):
        yield GaugeMetricFamily("kafscale_segment_cache_bytes", "Bytes of segments cached.", value=cache.size)
        lookups = CounterMetricFamily("kafscale_segment_cache_lookups", "Segment reads, by result.",
                                      labels=["result"])
        lookups.add_metric(["hit"], cache.hits)
        lookups.add_metric(["miss"], cache.misses)
        yield lookups
        read = CounterMetricFamily("kafscale_segment_cache_read_bytes", "Bytes of segments read, by result"
                                   " (a miss: read from the object store).", labels=["result"])
        read.add_metric(["hit"], cache.hit_bytes)
        read.add_metric(["miss"], cache.miss_bytes)
        yield read

    def _lease(self, metadata, clock):
        session = getattr(metadata, "current_session", None)
        if session is None:
            return
        alive = session.alive()
        yield GaugeMetricFamily("kafscale_etcd_lease_alive", "1 while the etcd session lease is certainly held.",
                                value=1 if alive else 0)
        remaining = max(session.deadline - clock.seconds(), 0) if alive else 0
        yield GaugeMetricFamily("kafscale_etcd_lease_remaining_seconds",
                                "Seconds the lease is known to last without another renewal.", value=remaining)

    def _groups(self, coordinator):
        members = GaugeMetricFamily("kafscale_group_members", "Members of the groups coordinated here.",
                                    labels=["group"])
        loaded = coordinator.loaded()
        for group_id in sorted(loaded)[:self._max_group_series]:
            members.add_metric([group_id], len(loaded[group_id].members))
        yield members
        yield GaugeMetricFamily("kafscale_groups", "Groups coordinated here with state in memory.",
                                value=len(loaded))
        yield CounterMetricFamily("kafscale_group_rebalances", "Rebalances completed by the groups coordinated"
                                  " here.", value=coordinator.rebalances)
