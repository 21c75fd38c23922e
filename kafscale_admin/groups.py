"""``kafscale-admin groups``: consumer groups' stored state and committed
offsets.

A group's members are what its coordinator last stored. Resetting or
deleting a group that has members is refused: its consumers would commit
over the change (or rejoin a deleted group) at once.
"""

import datetime
import time

import click

from kafscale.metadata.interfaces import CommittedOffset, UnknownTopic
from kafscale.protocol.records import InvalidRecords, iter_batches, iter_records
from kafscale.storage.segment import CorruptSegment, read_segment
from kafscale_admin.output import Column, console, emit, emit_json, number, output_option, say, table
from kafscale_admin.stores import AdminError, completing, group_names, topic_names


@click.group()
def groups():
    """List, describe, reset and delete consumer groups."""


def _members(state):
    return (state or {}).get("members", [])


def _summary(group_id, state, offsets):
    members = _members(state)
    state = state or {}
    return {"group": group_id, "state": "Stable" if members else "Empty", "members": len(members),
            "protocol_type": state.get("protocol_type"), "protocol": state.get("protocol_name"),
            "generation": state.get("generation_id"), "partitions": len(offsets)}


@groups.command("list")
@output_option
@click.pass_obj
def list_groups(admin, output):
    """List every group with stored state or committed offsets."""

    async def work(stores):
        found = []
        for group_id in await stores.metadata.groups():
            found.append(_summary(group_id, await stores.metadata.load_group(group_id),
                                  await stores.metadata.fetch_offsets(group_id)))
        return found

    emit(output, admin.run(work), [Column("group"), Column("state"), number("members"), Column("protocol_type", "type"),
                                   Column("protocol"), number("generation"), number("partitions")],
         empty="no groups")


@groups.command()
@click.argument("group", shell_complete=completing(group_names))
@output_option
@click.pass_obj
def describe(admin, group, output):
    """Show GROUP's members and, per partition, its committed offset, the
    high watermark and the lag."""

    async def work(stores):
        state = await stores.metadata.load_group(group)
        committed = await stores.metadata.fetch_offsets(group)
        if state is None and not committed:
            raise AdminError(f"no group {group!r}")
        offsets = []
        for (topic, partition), offset in sorted(committed.items()):
            try:
                partition_state = await stores.metadata.partition_state(topic, partition)
            except UnknownTopic:
                partition_state = None
            high_watermark = None if partition_state is None else partition_state.next_offset
            offsets.append({
                "topic": topic, "partition": partition, "committed_offset": offset.offset,
                "high_watermark": high_watermark,
                "lag": None if high_watermark is None else max(high_watermark - offset.offset, 0),
                "metadata": offset.metadata, "commit_ms": offset.commit_ms,
            })
        return state, committed, offsets

    state, committed, offsets = admin.run(work)
    summary = _summary(group, state, committed)
    members = [{key: member.get(key) for key in ("member_id", "group_instance_id", "client_id", "client_host")}
               for member in _members(state)]
    if output == "json":
        emit_json({**summary, "members": members, "offsets": offsets})
        return
    out = console()
    out.print(table(offsets, [Column("topic"), number("partition"), number("committed_offset", "committed offset"),
                              number("high_watermark", "high watermark"), number("lag")],
                    title=f"group {group}: {summary['state']}, {summary['members']} members,"
                          f" protocol {summary['protocol'] or '-'}"))
    if members:
        out.print(table(members, [Column("member_id", "member id"), Column("group_instance_id", "instance id"),
                                  Column("client_id", "client id"), Column("client_host", "host")],
                        title="members"))


def _topic_partitions(text):
    """``TOPIC`` or ``TOPIC:P,P,...`` -> (topic, partitions or None)."""
    topic, colon, listed = text.partition(":")
    if not colon:
        return topic, None
    try:
        return topic, sorted({int(p) for p in listed.split(",")})
    except ValueError:
        raise click.BadParameter(f"{text!r} is not TOPIC or TOPIC:P,P,...", param_hint="--topic") from None


def _utc_ms(text):
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 date and time", param_hint="--to-datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


async def offset_for_time(stores, state, target_ms):
    """The first offset at or after the log start whose record's timestamp
    is at least ``target_ms``; the high watermark if there is none."""
    for ref in state.segments:
        if ref.max_timestamp < target_ms:
            continue
        data = await stores.objects.get(ref.key, ref.position, ref.position + ref.size)
        try:
            segment = read_segment(data, ref.key, ref.position)
        except CorruptSegment as e:
            raise AdminError(str(e)) from None
        for batch in iter_batches(segment.batches, verify_crc=False, compacted=True):
            if batch.max_timestamp < target_ms or batch.last_offset < state.log_start_offset:
                continue
            try:
                records = list(iter_records(segment.batches[batch.position:batch.position + batch.size],
                                            with_data=False))
            except InvalidRecords as e:
                raise AdminError(f"{ref.key}: batch at offset {batch.base_offset}: {e}") from None
            for record in records:
                if record.offset >= state.log_start_offset and record.timestamp >= target_ms:
                    return record.offset
    return state.next_offset


@groups.command("reset-offsets")
@click.argument("group", shell_complete=completing(group_names))
@click.option("--topic", "topic_specs", multiple=True, required=True, metavar="TOPIC[:P,P...]",
              shell_complete=completing(topic_names),
              help="A topic, or some of its partitions (repeatable).")
@click.option("--to-earliest", is_flag=True, help="To each partition's log start offset.")
@click.option("--to-latest", is_flag=True, help="To each partition's high watermark.")
@click.option("--to-offset", type=int, metavar="N", help="To offset N (kept within the log).")
@click.option("--to-datetime", metavar="ISO", help="To the first record at or after this time (UTC unless given).")
@click.option("--shift-by", type=int, metavar="N", help="Move the committed offsets by N (kept within the log).")
@click.option("--execute", is_flag=True, help="Commit the new offsets; without it, only show them.")
@output_option
@click.pass_obj
def reset_offsets(admin, group, topic_specs, to_earliest, to_latest, to_offset, to_datetime, shift_by, execute,
                  output):
    """Move GROUP's committed offsets. A dry run unless --execute; refused
    while the group has members."""
    targets = [to_earliest, to_latest, to_offset is not None, to_datetime is not None, shift_by is not None]
    if sum(targets) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
    specs = [_topic_partitions(text) for text in topic_specs]
    target_ms = None if to_datetime is None else _utc_ms(to_datetime)

    async def new_offset(stores, state, current):
        if to_earliest:
            return state.log_start_offset
        if to_latest:
            return state.next_offset
        if target_ms is not None:
            return await offset_for_time(stores, state, target_ms)
        if to_offset is not None:
            wanted = to_offset
        else:
            if current is None:
                raise AdminError(f"group {group} has no committed offset for {state.topic}-{state.partition}"
                                 " to shift from")
            wanted = current.offset + shift_by
        return min(max(wanted, state.log_start_offset), state.next_offset)

    async def work(stores):
        members = _members(await stores.metadata.load_group(group))
        if members:
            raise AdminError(f"group {group} has {len(members)} members: stop its consumers first")
        topics = await stores.metadata.topics()
        committed = await stores.metadata.fetch_offsets(group)
        plan = []
        for topic, partitions in specs:
            info = topics.get(topic)
            if info is None:
                raise AdminError(f"no topic {topic!r}")
            for partition in range(info.partitions) if partitions is None else partitions:
                if not 0 <= partition < info.partitions:
                    raise AdminError(f"topic {topic} has no partition {partition}")
                state = await stores.metadata.partition_state(topic, partition)
                current = committed.get((topic, partition))
                plan.append({"topic": topic, "partition": partition,
                             "current_offset": None if current is None else current.offset,
                             "new_offset": await new_offset(stores, state, current)})
        if execute:
            now_ms = int(time.time() * 1000)
            await stores.metadata.commit_offsets(group, {
                (row["topic"], row["partition"]): CommittedOffset(row["new_offset"], -1, "", now_ms) for row in plan
            })
        return plan

    plan = admin.run(work)
    title = f"group {group}: " + ("new offsets committed" if execute else "dry run, add --execute to commit")
    emit(output, plan, [Column("topic"), number("partition"), number("current_offset", "current offset"),
                        number("new_offset", "new offset")], title,
         {"group": group, "executed": execute, "offsets": plan})


@groups.command()
@click.argument("group", shell_complete=completing(group_names))
@click.pass_obj
def delete(admin, group):
    """Delete GROUP's state and committed offsets; refused while it has members."""

    async def work(stores):
        members = _members(await stores.metadata.load_group(group))
        if members:
            raise AdminError(f"group {group} has {len(members)} members: stop its consumers first")
        if not await stores.metadata.delete_group(group):
            raise AdminError(f"no group {group!r}")

    admin.run(work)
    say(f"deleted group {group}")
