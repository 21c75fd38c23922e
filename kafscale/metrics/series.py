"""Counters and histograms for code that runs on the reactor thread alone.

prometheus_client's own take a lock on every update (two for a histogram
observation), which is most of what an update costs; every update of the
broker's metrics comes from the reactor thread, so plain numbers do. They
offer the part of prometheus_client's API the broker uses (``labels``,
``inc``, ``observe``) and are exported at scrape time, through its metric
families, registry and exposition."""

from bisect import bisect_left

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily


class _Series:
    def __init__(self, name, documentation, labelnames=(), registry=None):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children = {}  # label values -> child
        if not self.labelnames:
            self._children[()] = self._child()
        if registry is not None:
            registry.register(self)

    def labels(self, *values):
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
            child = self._children[values] = self._child()
        return child


class _CounterValue:
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def inc(self, amount=1):
        self.value += amount


class Counter(_Series):
    """A counter (exported as ``name_total``)."""

    def _child(self):
        return _CounterValue()

    def inc(self, amount=1):
        self._children[()].value += amount

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            family.add_metric(values, child.value)
        yield family


class _HistogramValue:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Histogram(_Series):
    """A histogram over ``buckets`` (upper bounds, ascending)."""

    def __init__(self, name, documentation, labelnames=(), registry=None, buckets=()):
        self.bounds = tuple(float(bound) for bound in buckets)
        super().__init__(name, documentation, labelnames, registry)

    def _child(self):
        return _HistogramValue(self.bounds)

    def observe(self, value):
        self._children[()].observe(value)

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [*(repr(bound) for bound in self.bounds), "+Inf"]
        for values, child in self._children.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, child.counts):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(values, buckets, child.sum)
        yield family
