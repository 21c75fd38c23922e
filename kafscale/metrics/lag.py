"""Consumer group lag: for each group this broker coordinates, each
partition's high watermark less the group's committed offset.

Sampled every ``interval`` seconds in the background, not at scrape time:
reading committed offsets (and the high watermarks of partitions owned
elsewhere) takes metadata store requests, which a scrape must not wait
for. A sample reads at most ``max_series`` partitions, one group at a time,
so its cost is bounded whatever the number of groups."""

from prometheus_client.core import GaugeMetricFamily
from twisted.application.internet import TimerService
from twisted.internet.defer import CancelledError, Deferred

from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError

log = logger("kafscale.metrics.lag")


class GroupLag(TimerService):
    """Samples the lag of the groups ``view`` says this broker coordinates,
    their offsets in ``metadata``, the high watermarks from ``logs`` (the
    partitions owned here) or ``metadata`` (the others)."""

    def __init__(self, metadata, view, logs, interval, max_series=1000, clock=None):
        super().__init__(interval, self._sample)
        self.setName("group-lag")
        if clock is not None:
            self.clock = clock
        self._metadata = metadata
        self._view = view
        self._logs = logs
        self.max_series = max_series
        self.lags = {}
        """(group, topic, partition) -> lag, as last sampled."""
        self.truncated = False
        """Whether the last sample left groups or partitions out (max_series)."""
        self._sampling = None

    def _sample(self):
        # A sample still running (a slow store) is not started again.
        if self._sampling is None:
            self._sampling = Deferred.fromCoroutine(self._read())
            self._sampling.addErrback(self._failed).addBoth(self._done)
        return None

    def _done(self, _):
        self._sampling = None

    def _failed(self, failure):
        if failure.check(MetadataError):
            log.warn("group lag not sampled: {error}", error=failure.value)
        elif not failure.check(CancelledError):
            log.failure("sampling group lag failed", failure)

    def stopService(self):
        if self._sampling is not None:
            self._sampling.cancel()
        return super().stopService()

    async def _read(self):
        lags = {}
        truncated = False
        watermarks = {}
        for group_id in sorted(await self._metadata.groups()):
            if not self._view.coordinates(group_id):
                continue
            offsets = await self._metadata.fetch_offsets(group_id)
            for (topic, partition), committed in sorted(offsets.items()):
                if len(lags) >= self.max_series:
                    truncated = True
                    break
                key = (topic, partition)
                if key not in watermarks:
                    watermarks[key] = await self._high_watermark(topic, partition)
                high_watermark = watermarks[key]
                if high_watermark is not None:
                    lags[group_id, topic, partition] = max(high_watermark - committed.offset, 0)
            if truncated:
                break
        self.lags = lags
        self.truncated = truncated

    async def _high_watermark(self, topic, partition):
        partition_log = self._logs.get((topic, partition))
        if partition_log is not None:
            return partition_log.high_watermark
        try:
            state = await self._metadata.partition_state(topic, partition)
        except MetadataError:
            # A topic deleted since the offsets were committed, say.
            return None
        return None if state is None else state.next_offset

    def families(self):
        lag = GaugeMetricFamily("kafscale_group_lag", "Records a group has yet to consume in a partition: the"
                                " high watermark less its committed offset (sampled).",
                                labels=["group", "topic", "partition"])
        for (group_id, topic, partition), value in self.lags.items():
            lag.add_metric([group_id, topic, str(partition)], value)
        yield lag
        yield GaugeMetricFamily("kafscale_group_lag_truncated", "1 when groups or partitions were left out of"
                                " kafscale_group_lag (more than its series cap).", value=1 if self.truncated else 0)
