"""``kafscale-admin top``: a live view of the brokers, read from their
``/metrics`` (their ``--admin-listen``): produce and fetch rates, p99
latencies, S3 requests, and the most lagging consumer groups."""

import json
import math
import time
import urllib.error
import urllib.request

import click
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

LAGGING_GROUPS_SHOWN = 10


class Scrape:
    """One broker's /metrics at one moment (``error`` if it did not answer)."""

    def __init__(self, url, at, samples=(), error=None):
        self.url = url
        self.at = at
        self.samples = list(samples)
        self.error = error

    def total(self, name, **labels):
        return sum(value for sample_name, sample_labels, value in self.samples
                   if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()))

    def labelled(self, name):
        return [(sample_labels, value) for sample_name, sample_labels, value in self.samples if sample_name == name]

    def buckets(self, name, **labels):
        """{upper bound: cumulative count} of a histogram, summed over the
        other labels."""
        found = {}
        for sample_labels, value in self.labelled(name + "_bucket"):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                bound = float(sample_labels["le"])
                found[bound] = found.get(bound, 0) + value
        return found


def scrape(url, timeout):
    at = time.monotonic()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return Scrape(url, at, error=str(getattr(error, "reason", error)))
    samples = [(sample.name, sample.labels, sample.value)
               for family in text_string_to_metric_families(text) for sample in family.samples]
    return Scrape(url, at, samples)


def quantile(q, earlier, later):
    """The ``q`` quantile of what a histogram observed between two readings
    of its buckets (as Prometheus' histogram_quantile, by linear
    interpolation within the bucket); None without observations."""
    bounds = sorted(later)
    counts = [later[bound] - earlier.get(bound, 0) for bound in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts):
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def broker_row(earlier, later):
    """What one broker did between two scrapes."""
    if later.error is not None:
        return {"url": later.url, "error": later.error}
    info = later.labelled("kafscale_broker_info")
    row = {
        "url": later.url,
        "node_id": int(info[0][0]["node_id"]) if info and info[0][0]["node_id"].isdigit() else None,
        "ready": later.total("kafscale_broker_ready") == 1,
        "connections": int(later.total("kafscale_connections")),
        "partitions": int(later.total("kafscale_partitions_owned")),
    }
    seconds = later.at - earlier.at
    if earlier.error is not None or seconds <= 0:
        return row

    def rate(name, **labels):
        return (later.total(name, **labels) - earlier.total(name, **labels)) / seconds

    row.update(
        produce_records_per_s=rate("kafscale_produced_records_total"),
        produce_bytes_per_s=rate("kafscale_produced_bytes_total"),
        fetch_records_per_s=rate("kafscale_fetched_records_total"),
        fetch_bytes_per_s=rate("kafscale_fetched_bytes_total"),
        requests_per_s=rate("kafscale_requests_total"),
        object_store_requests_per_s=rate("kafscale_object_store_requests_total"),
        produce_p99_s=quantile(0.99, earlier.buckets("kafscale_produce_ack_seconds"),
                               later.buckets("kafscale_produce_ack_seconds")),
        fetch_p99_s=quantile(0.99, earlier.buckets("kafscale_request_seconds", api="fetch"),
                             later.buckets("kafscale_request_seconds", api="fetch")),
    )
    return row


def lagging_groups(scrapes, shown=LAGGING_GROUPS_SHOWN):
    """The groups with the most lag over every broker, most first."""
    groups = {}
    for result in scrapes:
        for labels, value in result.labelled("kafscale_group_lag"):
            group = groups.setdefault(labels["group"], {"group": labels["group"], "lag": 0, "partitions": 0,
                                                        "worst": None, "worst_lag": -1})
            group["lag"] += int(value)
            group["partitions"] += 1
            if value > group["worst_lag"]:
                group["worst"] = f"{labels['topic']}-{labels['partition']}"
                group["worst_lag"] = int(value)
    ranked = sorted(groups.values(), key=lambda g: (-g["lag"], g["group"]))
    return ranked[:shown]


def view(earlier, later):
    """{"brokers": [...], "lagging_groups": [...]} between two rounds of scrapes."""
    return {"brokers": [broker_row(e, l) for e, l in zip(earlier, later)], "lagging_groups": lagging_groups(later)}


def _rate(value, unit=""):
    if value is None:
        return "-"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.1f}{prefix}{unit}"
    return f"{value:.1f}{unit}"


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def render(snapshot, interval):
    brokers = Table(title=f"Kafscale brokers (rates over {interval:g} s)", expand=True)
    for header in ("broker", "node", "ready", "conns", "partitions", "produce rec/s", "produce B/s", "fetch rec/s",
                   "fetch B/s", "produce p99", "fetch p99", "S3 req/s"):
        brokers.add_column(header, justify="left" if header in ("broker", "ready") else "right")
    for row in snapshot["brokers"]:
        if "error" in row:
            brokers.add_row(row["url"], "-", f"[red]unreachable: {row['error']}[/red]")
            continue
        brokers.add_row(
            row["url"], str(row["node_id"]), "yes" if row["ready"] else "[red]no[/red]", str(row["connections"]),
            str(row["partitions"]), _rate(row.get("produce_records_per_s")), _rate(row.get("produce_bytes_per_s")),
            _rate(row.get("fetch_records_per_s")), _rate(row.get("fetch_bytes_per_s")),
            _ms(row.get("produce_p99_s")), _ms(row.get("fetch_p99_s")), _rate(row.get("object_store_requests_per_s")))
    groups = Table(title="Most lagging consumer groups", expand=True)
    for header in ("group", "lag", "partitions", "most behind", "its lag"):
        groups.add_column(header, justify="left" if header in ("group", "most behind") else "right")
    for group in snapshot["lagging_groups"]:
        groups.add_row(group["group"], str(group["lag"]), str(group["partitions"]), group["worst"],
                       str(group["worst_lag"]))
    return Group(brokers, groups)


@click.command()
@click.option("-m", "--metrics", "urls", multiple=True, envvar="KAFSCALE_METRICS", show_envvar=True,
              default=["http://127.0.0.1:9644"], metavar="URL",
              help="A broker's admin API (its --admin-listen), repeated for each broker.")
@click.option("-n", "--interval", type=click.FloatRange(min=0.1), default=2.0, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one view, measured over one interval, and exit.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              help="With --once: a table, or JSON for programs.")
def top(urls, interval, once, output):
    """A live view of the brokers: rates, p99 latencies, S3 requests and the
    most lagging consumer groups, from each broker's /metrics."""
    timeout = max(interval, 1.0)
    earlier = [scrape(url, timeout) for url in urls]
    if once:
        time.sleep(interval)
        snapshot = view(earlier, [scrape(url, timeout) for url in urls])
        if output == "json":
            click.echo(json.dumps(snapshot, indent=2))
        else:
            Console().print(render(snapshot, interval))
        return
    try:
        with Live(render(view(earlier, earlier), interval), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                later = [scrape(url, timeout) for url in urls]
                live.update(render(view(earlier, later), interval), refresh=True)
                earlier = later
    except KeyboardInterrupt:
        pass
