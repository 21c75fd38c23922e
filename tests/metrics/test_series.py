"""The reactor-thread counters and histograms, as Prometheus reads them."""

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from twisted.trial import unittest

from kafscale.metrics.series import Counter, Histogram
from tests.support.metrics import Samples


class SeriesTests(unittest.TestCase):
    def setUp(self):
        self.registry = CollectorRegistry()

    def samples(self):
        return Samples(generate_latest(self.registry).decode())

    def test_counters(self):
        plain = Counter("things", "Things.", registry=self.registry)
        labelled = Counter("calls", "Calls.", ["op"], registry=self.registry)
        plain.inc()
        plain.inc(2.5)
        labelled.labels("put").inc()
        labelled.labels("get").inc(4)
        labelled.labels("put").inc()
        samples = self.samples()
        self.assertEqual(samples.total("things_total"), 3.5)
        self.assertEqual(samples.by("calls_total", "op"), {"put": 2, "get": 4})
        with self.assertRaises(ValueError):
            labelled.labels("put", "extra")

    def test_histograms_count_each_value_in_the_first_bucket_it_fits(self):
        latency = Histogram("latency_seconds", "Latency.", ["op"], buckets=(0.1, 1.0), registry=self.registry)
        for value in (0.05, 0.1, 0.5, 3.0):
            latency.labels("put").observe(value)
        samples = self.samples()
        self.assertEqual(samples.by("latency_seconds_bucket", "le", op="put"),
                         {"0.1": 2, "1.0": 3, "+Inf": 4})
        self.assertEqual(samples.total("latency_seconds_count", op="put"), 4)
        self.assertAlmostEqual(samples.total("latency_seconds_sum", op="put"), 3.65)
