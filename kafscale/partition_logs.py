"""The partition logs this broker serves, by (topic, partition), and who
leads the partitions it does not."""

from collections.abc import Mapping

from zope.interface import implementer

from kafscale.log import logger
from kafscale.metadata import topic_configs
from kafscale.metadata.interfaces import UnknownTopic
from kafscale.storage.interfaces import IPartitionHolder
from kafscale.storage.compaction import CompactionSettings
from kafscale.storage.partition_log import LogSettings, PartitionLog

log = logger("kafscale.partition_logs")


class NotLeader(Exception):
    """This broker does not serve the partition now: another broker does,
    or no one does while it changes hands."""


@implementer(IPartitionHolder)
class PartitionLogs(Mapping):
    """A read-only mapping of (topic, partition) to the PartitionLog this
    broker serves, and the logs' holder: it opens them (`open`), lets them
    ask whether they may still take writes, and drops a log deposed by
    another owner, telling `subscribe_deposed` callbacks.

    ``topics`` maps topic names to TopicInfo; ``view`` is the IClusterView;
    the rest is what every PartitionLog shares: the stores, the segment
    cache, the broker-wide buffer budget, the broker's flusher, the broker's
    ``config`` (per-partition buffer) and the reactor.
    """

    def __init__(self, topics, view, *, metadata, objects, cache, budget, flusher, config, reactor):
        self._topics = topics
        self._view = view
        self._shared = {"metadata": metadata, "objects": objects, "cache": cache, "budget": budget,
                        "flusher": flusher, "reactor": reactor}
        self._config = config
        self._logs = {}
        self._deposed_subscribers = []
        # Partitions opened and let go (popped or deposed), for metrics.
        self.taken = self.released = 0

    # -- the mapping

    def __getitem__(self, key):
        return self._logs[key]

    def __iter__(self):
        return iter(self._logs)

    def __len__(self):
        return len(self._logs)

    # -- for the handlers

    def log_for(self, topic, partition):
        """The PartitionLog this broker serves. Raises UnknownTopic (no such
        topic or partition) or NotLeader (another broker's, or no one's now)."""
        partition_log = self._logs.get((topic, partition))
        if partition_log is not None:
            return partition_log
        info = self._topics.get(topic)
        if info is None or not 0 <= partition < info.partitions:
            raise UnknownTopic(f"no partition {topic}-{partition}")
        raise NotLeader(f"{topic}-{partition} is not served here")

    def leader_of(self, topic, partition):
        """(leader node id, leader epoch), or (-1, -1) when no one owns it."""
        partition_log = self._logs.get((topic, partition))
        if partition_log is not None:
            return self._view.node_id, partition_log.leader_epoch
        owner = self._view.owner(topic, partition)
        info = self._topics.get(topic)
        if owner is None or info is None or owner.topic_id != info.topic_id or self._view.broker(owner.node_id) is None:
            return -1, -1
        return owner.node_id, owner.epoch

    # -- for the reconciliation

    def settings(self, info):
        """The LogSettings of a partition of topic ``info``."""
        return LogSettings(
            segment_bytes=topic_configs.effective_int(info.configs, "segment.bytes"),
            max_buffer_bytes=self._config.partition_buffer_bytes,
            compaction=CompactionSettings.of(info.configs),
        )

    def open(self, info, state):
        """Serve a partition of topic ``info`` just acquired at ``state``.
        -> its PartitionLog."""
        partition_log = PartitionLog(state, topic_id=info.topic_id, settings=self.settings(info), holder=self,
                                     **self._shared)
        self._logs[info.name, state.partition] = partition_log
        self.taken += 1
        return partition_log

    def pop(self, key):
        """Serve (topic, partition) no more. -> its PartitionLog, or None."""
        partition_log = self._logs.pop(key, None)
        if partition_log is not None:
            self.released += 1
        return partition_log

    def pop_all(self):
        """Serve nothing more. -> the PartitionLogs there were."""
        logs = list(self._logs.values())
        self._logs.clear()
        self.released += len(logs)
        return logs

    def subscribe_deposed(self, callback):
        """Call ``callback(partition_log)`` when another owner deposed one
        of the logs (it is no longer in this mapping then). -> a callable
        that unsubscribes."""
        self._deposed_subscribers.append(callback)
        return lambda: self._deposed_subscribers.remove(callback)

    # -- IPartitionHolder

    def may_append(self, topic, partition):
        return self._view.healthy() and self._view.holds(topic, partition)

    def deposed(self, partition_log):
        key = (partition_log.topic, partition_log.partition)
        if self._logs.get(key) is partition_log:
            del self._logs[key]
            self.released += 1
        log.warn("{topic}-{partition} was claimed by another owner", topic=key[0], partition=key[1])
        for callback in list(self._deposed_subscribers):
            callback(partition_log)
