"""``kafscale-admin brokers`` and ``kafscale-admin cluster``: who is live,
and whether the stores answer."""

import time
from collections import Counter

import click

from kafscale.metadata.interfaces import MetadataError
from kafscale.storage.interfaces import ObjectNotFound, ObjectStoreError
from kafscale_admin.output import Column, emit, number, output_option, timestamp

# A key no object has: asking for it shows the store answers.
PROBE_KEY = "kafscale-admin-probe"


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    return " ".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


@click.group()
def brokers():
    """The live brokers."""


@brokers.command("list")
@output_option
@click.pass_obj
def list_brokers(admin, output):
    """List the live brokers: address, rack, uptime and partitions owned."""

    async def work(stores):
        return await stores.metadata.brokers(), await stores.owners()

    live, owners = admin.run(work)
    owned = Counter(owners.values())
    now = time.time()
    rows = [
        {"node_id": info.node_id, "host": info.host, "port": info.port, "rack": info.rack,
         "started_ms": info.started_ms, "uptime_s": round(now - info.started_ms / 1000, 3),
         "partitions": owned[info.node_id]}
        for info in live
    ]
    emit(output, rows, [number("node_id", "id"), Column("host"), number("port"), Column("rack"),
                        timestamp("started_ms", "started"), Column("uptime_s", "uptime", show=_duration),
                        number("partitions", "partitions owned")], empty="no live brokers")


@click.group()
def cluster():
    """The cluster as a whole."""


@cluster.command()
@output_option
@click.pass_context
def status(ctx, output):
    """Check that the metadata store and the bucket answer, and count
    brokers, topics, partitions and groups. Exits with status 1 when a
    store does not answer."""
    location = ctx.obj.location

    async def work(stores):
        report = {"metadata_store": location.describe_metadata(), "metadata_error": None,
                  "object_store": location.describe_objects(), "object_store_error": None}
        try:
            topics = await stores.metadata.topics()
            report.update(brokers=len(await stores.metadata.brokers()), topics=len(topics),
                          partitions=sum(info.partitions for info in topics.values()),
                          groups=len(await stores.metadata.groups()))
        except MetadataError as e:
            report["metadata_error"] = str(e)
        try:
            await stores.objects.head(PROBE_KEY)
        except ObjectNotFound:
            pass
        except ObjectStoreError as e:
            report["object_store_error"] = str(e)
        return report

    report = ctx.obj.run(work)
    report["metadata_reachable"] = report["metadata_error"] is None
    report["object_store_reachable"] = report["object_store_error"] is None

    def reachability(error):
        return "reachable" if error is None else f"unreachable: {error}"

    rows = [
        {"check": "metadata store", "value": f"{report['metadata_store']}: {reachability(report['metadata_error'])}"},
        {"check": "object store", "value": f"{report['object_store']}: {reachability(report['object_store_error'])}"},
        *({"check": name, "value": report[name]} for name in ("brokers", "topics", "partitions", "groups")
          if name in report),
    ]
    emit(output, rows, [Column("check"), Column("value")], "cluster status", report)
    if not (report["metadata_reachable"] and report["object_store_reachable"]):
        ctx.exit(1)
