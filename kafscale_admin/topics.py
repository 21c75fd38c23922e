"""``kafscale-admin topics``: topics in the metadata store, and their
objects in the bucket."""

import time

import click

from kafscale.metadata import topic_configs
from kafscale.metadata.interfaces import InvalidPartitions, TopicExists, UnknownTopic
from kafscale.storage.compaction import CompactionSettings, cleanable_end, dirty_state
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.segment import topic_prefix
from kafscale_admin.output import Column, emit, number, output_option, say, timestamp
from kafscale_admin.stores import AdminError, all_of, completing, topic_names


@click.group()
def topics():
    """Create, list, describe, alter and delete topics."""


topic_argument = click.argument("name", shell_complete=completing(topic_names))


def name_value_pairs(values, option):
    """``NAME=VALUE`` option values as a dict."""
    pairs = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        pairs[name] = value
    return pairs


async def topic_info(stores, name):
    info = (await stores.metadata.topics()).get(name)
    if info is None:
        raise AdminError(f"no topic {name!r}")
    return info


def _configs_text(configs):
    return ", ".join(f"{k}={v}" for k, v in sorted(configs.items())) or "defaults"


@topics.command("list")
@output_option
@click.pass_obj
def list_topics(admin, output):
    """List every topic."""

    async def work(stores):
        return await stores.metadata.topics()

    rows = [
        {"name": info.name, "topic_id": str(info.topic_id), "partitions": info.partitions,
         "configs": info.configs, "created_ms": info.created_ms}
        for info in sorted(admin.run(work).values(), key=lambda info: info.name)
    ]
    emit(output, rows, [Column("name"), number("partitions"), Column("topic_id", "topic id"), Column("configs"),
                        timestamp("created_ms", "created")], empty="no topics")


@topics.command()
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of partitions.")
@click.option("-c", "--config", "configs", multiple=True, metavar="NAME=VALUE",
              help="A topic config, like retention.ms=86400000 (repeatable).")
@click.pass_obj
def create(admin, name, partitions, configs):
    """Create topic NAME."""
    configs = name_value_pairs(configs, "--config")
    try:
        topic_configs.check_topic_name(name)
        topic_configs.validate(configs)
    except (topic_configs.InvalidTopicName, topic_configs.InvalidConfig) as e:
        raise AdminError(str(e)) from None

    async def work(stores):
        try:
            return await stores.metadata.create_topic(name, partitions, configs)
        except TopicExists:
            raise AdminError(f"topic {name!r} already exists") from None

    info = admin.run(work)
    say(f"created topic {name} with {partitions} partitions (id {info.topic_id})")


@topics.command()
@topic_argument
@output_option
@click.pass_obj
def describe(admin, name, output):
    """Show each partition of topic NAME: owner, leader epoch, log start,
    high watermark, segments and bytes."""

    async def work(stores):
        info = await topic_info(stores, name)
        states = [await stores.metadata.partition_state(name, p) for p in range(info.partitions)]
        return info, states, await stores.owners()

    info, states, owners = admin.run(work)
    compaction = CompactionSettings.of(info.configs)
    rows = []
    for state in states:
        row = {"partition": state.partition, "owner": owners.get((name, state.partition)),
               "leader_epoch": state.leader_epoch, "log_start_offset": state.log_start_offset,
               "high_watermark": state.next_offset, "segments": len(state.segments),
               "bytes": sum(segment.size for segment in state.segments)}
        if compaction is not None:
            row.update(_cleanable(state.segments, compaction))
        rows.append(row)
    columns = [number("partition"), number("owner"), number("leader_epoch", "leader epoch"),
               number("log_start_offset", "log start"), number("high_watermark", "high watermark"),
               number("segments"), number("bytes")]
    if compaction is not None:
        columns += [number("clean_bytes", "clean"), number("dirty_bytes", "dirty"),
                    Column("dirty_ratio", "dirty ratio"), number("uncleanable_bytes", "not yet cleanable")]
    document = {"name": name, "topic_id": str(info.topic_id), "created_ms": info.created_ms,
                "configs": info.configs, "partitions": rows}
    title = f"topic {name} (id {info.topic_id}), configs: {_configs_text(info.configs)}"
    emit(output, rows, columns, title, document)


def _cleanable(segments, settings):
    """A compacted partition's clean, dirty and not yet cleanable bytes, as
    its owner's next compaction sees them (but for the entries its merge
    has not settled, which only the owner knows)."""
    state = dirty_state(segments, cleanable_end(segments, int(time.time() * 1000), settings))
    uncleanable = sum(ref.size for ref in segments[state.end:])
    return {"clean_bytes": state.clean_bytes, "dirty_bytes": state.dirty_bytes,
            "dirty_ratio": round(state.ratio, 3), "uncleanable_bytes": uncleanable}


@topics.command()
@topic_argument
@click.pass_obj
def delete(admin, name):
    """Delete topic NAME and its objects."""

    async def work(stores):
        try:
            info = await stores.metadata.delete_topic(name)
        except UnknownTopic:
            raise AdminError(f"no topic {name!r}") from None
        # The metadata is gone, so nothing reads these any more.
        objects = await stores.objects.list(topic_prefix(name, info.topic_id))
        try:
            await all_of([stores.objects.delete(item.key) for item in objects])
        except ObjectStoreError as e:
            raise AdminError(f"topic {name} deleted, but not all of its objects: {e};"
                             " `segments gc --execute` removes the rest") from None
        return len(objects)

    removed = admin.run(work)
    say(f"deleted topic {name} and its {removed} objects")


@topics.command("alter-config")
@topic_argument
@click.option("--set", "updates", multiple=True, metavar="NAME=VALUE", help="Set a config (repeatable).")
@click.option("--delete", "deletions", multiple=True, metavar="NAME",
              help="Return a config to its default (repeatable).")
@click.pass_obj
def alter_config(admin, name, updates, deletions):
    """Change the configs of topic NAME, in one atomic write."""
    updates = name_value_pairs(updates, "--set")
    if not updates and not deletions:
        raise click.UsageError("nothing to change: give --set or --delete")
    try:
        topic_configs.validate(updates)
    except topic_configs.InvalidConfig as e:
        raise AdminError(str(e)) from None
    unknown = [config for config in deletions if config not in topic_configs.TOPIC_CONFIGS]
    if unknown:
        raise AdminError(f"unknown topic config {unknown[0]!r}")

    async def work(stores):
        try:
            return await stores.metadata.alter_topic_configs(name, updates, deletions)
        except UnknownTopic:
            raise AdminError(f"no topic {name!r}") from None

    info = admin.run(work)
    say(f"topic {name} configs: {_configs_text(info.configs)}")


@topics.command("add-partitions")
@topic_argument
@click.option("--total", type=click.IntRange(min=1), required=True, help="The new number of partitions.")
@click.pass_obj
def add_partitions(admin, name, total):
    """Grow topic NAME to --total partitions."""

    async def work(stores):
        info = await topic_info(stores, name)
        if total <= info.partitions:
            raise AdminError(f"topic {name} has {info.partitions} partitions: --total must be more")
        try:
            return await stores.metadata.add_partitions(name, total)
        except (UnknownTopic, InvalidPartitions) as e:
            raise AdminError(str(e)) from None

    info = admin.run(work)
    say(f"topic {name} now has {info.partitions} partitions")
