"""What metrics cost produce throughput: the same confluent-kafka load
against a broker from this checkout (metrics on, /metrics scraped every
``--scrape-interval`` seconds) and from a checkout without metrics,
alternating rounds so that the machine's other load falls on both alike.

    git worktree add /tmp/kafscale-base <a commit without metrics>
    PYTHONPATH=. python bench/metrics_overhead.py --baseline /tmp/kafscale-base [--rounds 5] [--seconds 6] \
        [--load small|large|both]

Two loads, local-directory store: small records in many requests (100 B,
librdkafka's default batch size: the most requests per record, where
per-request work shows most) and 1 KiB records in large batches. Reports
the median records/s of each build, the ratio, and the broker's CPU
seconds per 100,000 records.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.data_path import cpu_seconds, produce_for, wait_for_port
from tests.support.brokers import free_port

LOADS = {
    "small": ("100 B records, 16 KiB batches", {"size": 100, "batch.size": 16384}),
    "large": ("1 KiB records, 1 MiB batches", {"size": 1024, "batch.size": 1 << 20}),
}


class Broker:
    """A broker process from the checkout at ``root``."""

    def __init__(self, root, with_metrics):
        self.port = free_port()
        self.admin_port = free_port() if with_metrics else None
        self.data_dir = tempfile.mkdtemp(prefix="kafscale-bench-")
        admin = ["--admin-listen", f"tcp:{self.admin_port}:interface=127.0.0.1"] if with_metrics else []
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "kafscale", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
             "--data-dir", self.data_dir, "--log-level", "warn", *admin],
            cwd=root, env=dict(os.environ, PYTHONPATH=root),
            stdout=open(os.path.join(self.data_dir, "broker.log"), "ab"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.scrapes = 0
        self._stop = threading.Event()
        self._scraper = None

    def scrape_every(self, seconds):
        def scrape():
            while not self._stop.wait(seconds):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as reply:
                    reply.read()
                self.scrapes += 1

        self._scraper = threading.Thread(target=scrape, daemon=True)
        self._scraper.start()

    def produce_requests(self):
        """Produce requests answered so far, from /metrics (None without it)."""
        if self.admin_port is None:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith('kafscale_requests_total{api="produce"}'):
                    return float(line.split()[-1])
        return 0

    def stop(self):
        self._stop.set()
        if self._scraper is not None:
            self._scraper.join()
        self.process.terminate()
        self.process.wait(30)


def produce(broker, load, seconds):
    """-> (records acknowledged per second, broker CPU seconds per 100,000 records)."""
    topic = "overhead"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 3)])[topic].result(30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                         "batch.size": load["batch.size"], "queue.buffering.max.kbytes": 256 << 10})
    cpu_before = cpu_seconds(broker.process.pid)
    acked, elapsed = produce_for(producer, topic, os.urandom(load["size"]), seconds)
    cpu = cpu_seconds(broker.process.pid) - cpu_before
    return acked / elapsed, cpu / acked * 100_000, broker.produce_requests()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="A checkout of Kafscale without metrics.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--scrape-interval", type=float, default=5)
    parser.add_argument("--load", choices=[*LOADS, "both"], default="both")
    options = parser.parse_args()
    builds = {"without metrics": (os.path.abspath(options.baseline), False),
              "with metrics": (os.getcwd(), True)}
    for name, load in [LOADS[key] for key in LOADS if options.load in (key, "both")]:
        figures = {build: [] for build in builds}
        for round_number in range(options.rounds):
            order = list(builds) if round_number % 2 == 0 else list(reversed(builds))
            for build in order:
                root, with_metrics = builds[build]
                broker = Broker(root, with_metrics)
                try:
                    if with_metrics:
                        broker.scrape_every(options.scrape_interval)
                    figures[build].append(produce(broker, load, options.seconds))
                finally:
                    broker.stop()
        print(f"{name}, {options.rounds} rounds of {options.seconds:g} s:")
        medians = {}
        for build, results in figures.items():
            rates = [rate for rate, _, _ in results]
            medians[build] = statistics.median(rates)
            cpu = statistics.median(cost for _, cost, _ in results)
            print(f"  {build:16} median {medians[build]:9.0f} records/s (rounds: "
                  f"{', '.join(f'{r:.0f}' for r in rates)}), broker CPU {cpu:.3f} s per 100k records")
            requests = [count for _, _, count in results if count]
            if requests:
                # Each broker is new: its counter holds this round's requests
                # (and the topic's creation, a handful).
                rate = statistics.median(rates)
                per_request = statistics.median(count for count in requests) / (rate * options.seconds)
                print(f"  {'':16} {1 / per_request:.0f} records per produce request,"
                      f" so {cpu / 100_000 / per_request * 1e6:.0f} us of broker CPU per request")
        ratio = medians["with metrics"] / medians["without metrics"]
        print(f"  with/without: {ratio:.3f} ({100 * (ratio - 1):+.1f} %)")


if __name__ == "__main__":
    main()
