"""Retention: the owner of a partition drops its oldest whole segments once
they are past ``retention.ms`` (by their newest record's timestamp) or the
partition is over ``retention.bytes`` (when its cleanup policy has
delete), and DeleteRecords drops what lies
below an offset it names.

Either way the log start offset advances in the metadata store first (a
compare-and-swap on the owner's epoch), so from that moment no reader is
sent to the dropped segments: fetches below the new start get
OFFSET_OUT_OF_RANGE and consumers reset. Only then are the objects of
format-1 segments deleted; one whose delete fails is an orphan nothing
references, which ``kafscale-admin segments gc`` removes. A slice of a
multi-partition object (format 2) only leaves the manifest: other
partitions may still name the object, which garbage collection deletes
once none does.
"""

from twisted.internet.defer import gatherResults

from kafscale.log import logger
from kafscale.metadata.topic_configs import cleanup_policies, effective_int
from kafscale.periodic import PeriodicService
from kafscale.storage.errors import PartitionError
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.segment import index_key
from kafscale.turns import Turns

log = logger("kafscale.storage.retention")


def retention_start(state, configs, now_ms):
    """The log start offset retention wants for a partition in ``state``
    (a PartitionState) under the topic's ``configs`` at ``now_ms``.

    Segments go oldest first and whole, while the oldest is expired (its
    newest record older than retention.ms) or the rest would still hold at
    least retention.bytes, as in Kafka. A topic whose cleanup policy is
    compact alone keeps every segment (compaction bounds it). The result is
    never below the current log start.
    """
    if "delete" not in cleanup_policies(configs):
        return state.log_start_offset
    retention_ms = effective_int(configs, "retention.ms")
    retention_bytes = effective_int(configs, "retention.bytes")
    size = state.segments.size
    start = state.log_start_offset
    for segment in state.segments:
        expired = retention_ms >= 0 and now_ms - segment.max_timestamp > retention_ms
        spare = retention_bytes >= 0 and size - segment.size >= retention_bytes
        if not (expired or spare):
            break
        size -= segment.size
        start = max(start, segment.last_offset + 1)
    return start


async def drop_segments_below(partition_log, new_start):
    """Advance ``partition_log``'s start offset to ``new_start``, then delete
    the objects of the format-1 segments that fell wholly below it. -> the removed
    SegmentRefs. Raises PartitionError when the log start cannot move (deposed
    owner, offset beyond the high watermark, metadata store down); a failed
    object delete is only logged."""
    removed = await partition_log.advance_log_start(new_start)
    deletes = []
    for segment in removed:
        partition_log.cache.discard(segment)
        if segment.format != 1:
            continue
        for key in (segment.key, index_key(segment.key)):
            deletes.append(partition_log.objects.delete(key).addErrback(_delete_failed, key))
    await gatherResults(deletes)
    return removed


def _delete_failed(failure, key):
    failure.trap(ObjectStoreError)
    log.warn("deleting {key} failed, leaving an orphan for `segments gc`: {error}", key=key, error=failure.value)


class RetentionService(PeriodicService):
    """Every ``interval`` seconds, apply retention to each partition in
    ``logs`` (a mapping of (topic, partition) to the PartitionLogs the broker
    owns) under its topic's configs in ``topics`` (a mapping of name to
    TopicInfo) as ``with_defaults(configs)`` completes them (with the
    broker's dynamic defaults); ``clock`` is an IReactorTime.

    Passes never overlap, and stopping waits for the one running.
    """

    name = "retention"

    def __init__(self, logs, topics, interval, clock=None, with_defaults=lambda configs: configs):
        if clock is None:
            from twisted.internet import reactor as clock
        super().__init__(interval, clock)
        self.logs = logs
        self.topics = topics
        self.with_defaults = with_defaults

    async def run_pass(self):
        await self.enforce()

    async def enforce(self):
        """One pass over every partition this broker owns."""
        now_ms = int(self.clock.seconds() * 1000)
        turns = Turns(self.clock)
        for (topic, partition), partition_log in list(self.logs.items()):
            await turns.tick()
            info = self.topics.get(topic)
            if not self.running or info is None or partition_log.closed:
                continue
            try:
                new_start = retention_start(partition_log.state, self.with_defaults(info.configs), now_ms)
                if new_start <= partition_log.log_start_offset:
                    continue
                removed = await drop_segments_below(partition_log, new_start)
            except PartitionError as e:
                log.warn("retention of {topic}-{partition} failed: {error}", topic=topic, partition=partition,
                         error=e)
                continue
            except Exception:
                # One partition's trouble must not stop retention for the rest.
                log.failure("retention of {topic}-{partition} failed", topic=topic, partition=partition)
                continue
            log.info("retention dropped {count} segments of {topic}-{partition}; log start now {start}",
                     count=len(removed), topic=topic, partition=partition, start=new_start)
