"""``kafscale-admin segments``: the segment objects in the bucket, checked
against the manifests in the metadata store.

An object no manifest names is an orphan only when no writer can still
make a manifest name it. At once when its topic (or that incarnation of
it) is gone, when a newer owner has fenced its writer, or when it is a
flush's upload below the log start or the high watermark (a flush commits
only at the high watermark). Otherwise only once it is older than the
grace period (``--grace``, 10 minutes by default): until then it may be a
flush about to commit, a merge about to swap its output in, or an object a
merge just replaced that readers are still reading. Objects shared by
several partitions (``~objects/``) are orphans when no partition's
manifest names them, after the grace period. The bucket is listed before
the manifests are read, so a segment committed in between is seen as
committed.
"""

import base64
import re
import time
from collections import defaultdict

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThread

from kafscale.metadata.interfaces import UnknownTopic
from kafscale.protocol.records import InvalidRecords, iter_batches, iter_records
from kafscale.storage.interfaces import ObjectNotFound
from kafscale.storage.object_format import (
    OBJECT_FOOTER_SIZE,
    OBJECTS_PREFIX,
    is_object_key,
    read_directory,
    read_footer,
)
# The layout's one definition is in the segment module.
from kafscale.storage.segment import FOOTER, FOOTER_SIZE, HEADER, HEADER_SIZE, INDEX_HEADER, CorruptSegment
from kafscale.storage.segment import index_key, read_index, read_segment
from kafscale_admin.output import Column, console, emit, emit_json, iso_time, number, output_option, table
from kafscale_admin.stores import AdminError, all_of, completing, topic_names
from kafscale_admin.topics import topic_info

SEGMENT_KEY = re.compile(
    r"(?P<topic>[^/]+)/(?P<topic_id>[0-9a-f]{32})/(?P<partition>\d+)/"
    r"segment-(?P<base>\d{20})-(?P<epoch>\d+)-(?:\d+|(?P<merge>[mc][0-9a-f]+))\.(?:kfs|index)"
)

# How old an object no manifest names must be before it counts as an
# orphan, when a writer may still be about to name it.
DEFAULT_GRACE_SECONDS = 600

# Segments downloaded at once by verify.
CONCURRENT_DOWNLOADS = 4


@click.group()
def segments():
    """List, inspect, dump, verify and garbage-collect segment objects."""


# -- list ----------------------------------------------------------------------


@segments.command("list")
@click.argument("topic", shell_complete=completing(topic_names))
@click.option("-p", "--partition", type=click.IntRange(min=0), help="Only this partition.")
@output_option
@click.pass_obj
def list_segments(admin, topic, partition, output):
    """List TOPIC's segments, from the manifest."""

    async def work(stores):
        info = await topic_info(stores, topic)
        partitions = range(info.partitions) if partition is None else [partition]
        try:
            return [await stores.metadata.partition_state(topic, p) for p in partitions]
        except UnknownTopic:
            raise AdminError(f"topic {topic} has no partition {partition}") from None

    states = admin.run(work)
    sharing = defaultdict(list)
    for state in states:
        for ref in state.segments:
            sharing[ref.key].append(state.partition)
    rows = [
        {"partition": state.partition, "base_offset": ref.base_offset, "last_offset": ref.last_offset,
         "records": ref.count, "bytes": ref.size, "max_timestamp": ref.max_timestamp, "key": ref.key,
         "format": ref.format, "position": ref.position,
         "shared_with": [p for p in sharing[ref.key] if p != state.partition]}
        for state in states for ref in state.segments
    ]
    emit(output, rows, [number("partition"), number("base_offset", "base offset"),
                        number("last_offset", "last offset"), number("records"), number("bytes"),
                        Column("max_timestamp", "newest record", show=iso_time),
                        Column("key", "object", show=lambda key: key.rpartition("/")[2]), number("format"),
                        Column("shared_with", "shared with", show=_shared_with)], empty="no segments")


def _shared_with(partitions):
    """The other partitions (of the topic listed) with a slice in the same
    object, "-" for none."""
    return ", ".join(str(p) for p in partitions) or "-"


# -- inspect and dump ----------------------------------------------------------


async def _segment_holding(stores, topic, partition, offset):
    await topic_info(stores, topic)
    try:
        state = await stores.metadata.partition_state(topic, partition)
    except UnknownTopic:
        raise AdminError(f"topic {topic} has no partition {partition}") from None
    for ref in state.segments:
        if ref.base_offset <= offset <= ref.last_offset:
            return ref
    raise AdminError(f"offset {offset} is in no segment of {topic}-{partition}"
                     f" (log start {state.log_start_offset}, high watermark {state.next_offset})")


def _batch_rows(data):
    """One row per batch of a ``.kfs`` object, each batch's CRC checked on
    its own; a structural fault ends the list with a row saying what."""
    rows = []
    view = memoryview(data)[HEADER_SIZE:-FOOTER_SIZE]
    try:
        for batch in iter_batches(view, verify_crc=False, compacted=True):
            try:
                list(iter_batches(view[batch.position:batch.position + batch.size], compacted=True))
                crc_ok = True
            except InvalidRecords:
                crc_ok = False
            rows.append({"position": HEADER_SIZE + batch.position, "base_offset": batch.base_offset,
                         "last_offset": batch.last_offset, "records": batch.record_count, "bytes": batch.size,
                         "first_timestamp": batch.first_timestamp, "max_timestamp": batch.max_timestamp,
                         "compression": batch.compression.name.lower(), "crc_ok": crc_ok})
    except InvalidRecords as e:
        rows.append({"error": e.message})
    return rows


def _describe_objects(ref, data, index_data, directory):
    """What inspect shows of a segment and its index (or the shared object
    it is a slice of), leniently: a damaged object is described as far as it
    can be, with the reason."""
    kfs_key = ref.key
    document = {"key": kfs_key, "format": ref.format, "position": ref.position, "size": len(data)}
    try:
        read_segment(data, kfs_key, ref.position)
        document["verdict"] = "ok"
    except CorruptSegment as e:
        document["verdict"] = e.reason
    if len(data) >= HEADER_SIZE + FOOTER_SIZE:
        magic, version, flags, base_offset, count, created_ms, _ = HEADER.unpack_from(data, 0)
        document["header"] = {"magic": magic.decode("latin-1"), "version": version, "flags": flags,
                              "base_offset": base_offset, "records": count, "created_ms": created_ms}
        crc, last_offset, footer_magic = FOOTER.unpack_from(data, len(data) - FOOTER_SIZE)
        document["footer"] = {"crc32c": f"{crc:#010x}", "last_offset": last_offset,
                              "magic": footer_magic.decode("latin-1")}
        document["batches"] = _batch_rows(data)
    if ref.format != 1:
        if isinstance(directory, str):
            document["object"] = {"verdict": directory}
        else:
            document["object"] = {"verdict": "ok", "slices": [
                {"topic": s.topic, "partition": s.partition, "position": s.position, "bytes": s.size,
                 "base_offset": s.base_offset, "last_offset": s.last_offset, "records": s.count}
                for s in directory]}
        return document
    key = index_key(kfs_key)
    if index_data is None:
        document["index"] = {"key": key, "verdict": "missing"}
    else:
        document["index"] = {"key": key, "size": len(index_data)}
        try:
            index = read_index(index_data, key)
            document["index"].update(verdict="ok", interval=index.interval,
                                     entries=[[o, p] for o, p in zip(index.offsets, index.positions)])
        except CorruptSegment as e:
            document["index"]["verdict"] = e.reason
            if len(index_data) >= INDEX_HEADER.size:
                document["index"]["declared_entries"] = INDEX_HEADER.unpack_from(index_data, 0)[2]
    return document


async def _fetch_segment(stores, topic, partition, offset):
    """-> (ref, the entry's bytes, its .index or None, the directory of its
    shared object or None)."""
    ref = await _segment_holding(stores, topic, partition, offset)
    try:
        data = await stores.objects.get(ref.key, ref.position, ref.position + ref.size)
        if ref.format != 1:
            return ref, data, None, await _directory(stores, ref.key)
    except ObjectNotFound:
        raise AdminError(f"the manifest names {ref.key}, but there is no such object") from None
    try:
        index_data = await stores.objects.get(index_key(ref.key))
    except ObjectNotFound:
        index_data = None
    return ref, data, index_data, None


async def _directory(stores, key):
    """The slices a shared object holds, read from its tail alone, or the
    reason it cannot be read."""
    size = await stores.objects.head(key)
    try:
        position, length, crc = read_footer(await stores.objects.get(key, max(size - OBJECT_FOOTER_SIZE, 0)),
                                            key, size)
        return read_directory(await stores.objects.get(key, position, position + length), key, crc)
    except CorruptSegment as e:
        return e.reason


_BATCH_COLUMNS = [number("position"), number("base_offset", "base offset"), number("last_offset", "last offset"),
                  number("records"), number("bytes"), Column("first_timestamp", "first timestamp", show=iso_time),
                  Column("max_timestamp", "newest record", show=iso_time), Column("compression"),
                  Column("crc_ok", "CRC ok")]


def _batch_columns(rows):
    """The batch columns, with one for the structural fault if there is one."""
    return _BATCH_COLUMNS + ([Column("error")] if any("error" in row for row in rows) else [])


def _key_values(mapping):
    return [{"field": key, "value": value} for key, value in mapping.items()]


_FIELD_COLUMNS = [Column("field"), Column("value")]


@segments.command()
@click.argument("topic", shell_complete=completing(topic_names))
@click.argument("partition", type=click.IntRange(min=0))
@click.argument("offset", type=click.IntRange(min=0))
@output_option
@click.pass_obj
def inspect(admin, topic, partition, offset, output):
    """Show the segment of TOPIC PARTITION holding OFFSET: header, footer,
    index and every batch, each checked."""

    async def work(stores):
        return await _fetch_segment(stores, topic, partition, offset)

    ref, data, index_data, directory = admin.run(work)
    document = _describe_objects(ref, data, index_data, directory)
    if output == "json":
        emit_json(document)
        return
    out = console()
    if ref.format == 1:
        out.print(f"segment {document['key']} ({document['size']} bytes): {document['verdict']}")
    else:
        out.print(f"slice of shared object {document['key']} at byte {ref.position} ({document['size']} bytes):"
                  f" {document['verdict']}")
    if "header" in document:
        header = {key: value for key, value in document["header"].items() if key != "created_ms"}
        header["created"] = iso_time(document["header"]["created_ms"])
        out.print(table(_key_values(header), _FIELD_COLUMNS, title="header"))
        out.print(table(_key_values(document["footer"]), _FIELD_COLUMNS, title="footer"))
    if "object" in document:
        shared = document["object"]
        if "slices" in shared:
            out.print(table(shared["slices"], [Column("topic"), number("partition"), number("position"),
                                               number("bytes"), number("base_offset", "base offset"),
                                               number("last_offset", "last offset"), number("records")],
                            title=f"the object's slices ({len(shared['slices'])} partitions)"))
        else:
            out.print(f"the object's directory: {shared['verdict']}")
    else:
        index = document["index"]
        summary = {key: value for key, value in index.items() if key != "entries"}
        out.print(table(_key_values(summary), _FIELD_COLUMNS, title="index"))
        if index.get("entries"):
            out.print(table([{"offset": o, "position": p} for o, p in index["entries"]],
                            [number("offset"), number("position")], title="index entries"))
    if "batches" in document:
        out.print(table(document["batches"], _batch_columns(document["batches"]), title="batches"))


def _text(data):
    """Record bytes for people: UTF-8 text when they are, else base64."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()
    return text if text.isprintable() else "base64:" + base64.b64encode(data).decode()


def _records(data, ref, offset):
    key = ref.key
    try:
        segment = read_segment(data, key, ref.position)
    except CorruptSegment as e:
        raise AdminError(str(e)) from None
    rows = []
    for batch in iter_batches(segment.batches, verify_crc=False, compacted=True):
        if batch.last_offset < offset:
            continue
        try:
            # Decompressed a chunk at a time, and refused past a bound: a
            # small batch can expand to gigabytes.
            for record in iter_records(segment.batches[batch.position:batch.position + batch.size]):
                if record.offset >= offset:
                    rows.append({"offset": record.offset, "timestamp": record.timestamp, "key": _text(record.key),
                                 "value": _text(record.value),
                                 "headers": [[name, _text(value)] for name, value in record.headers]})
        except InvalidRecords as e:
            raise AdminError(f"{key}: batch at offset {batch.base_offset}: {e}") from None
    return rows


@segments.command()
@click.argument("topic", shell_complete=completing(topic_names))
@click.argument("partition", type=click.IntRange(min=0))
@click.argument("offset", type=click.IntRange(min=0))
@click.option("--records", is_flag=True, help="Decode the records (decompressing batches) from OFFSET on.")
@output_option
@click.pass_obj
def dump(admin, topic, partition, offset, records, output):
    """Dump the batches of the segment of TOPIC PARTITION holding OFFSET, or
    with --records its records: keys, values and headers as UTF-8 text, or
    base64 when they are not text."""

    async def work(stores):
        return await _fetch_segment(stores, topic, partition, offset)

    ref, data, _, _ = admin.run(work)
    if not records:
        rows = _batch_rows(data)
        emit(output, rows, _batch_columns(rows), title=ref.key)
        return
    emit(output, _records(data, ref, offset),
         [number("offset"), Column("timestamp", show=iso_time), Column("key"), Column("value"),
          Column("headers", show=lambda headers: ", ".join(f"{k}={v}" for k, v in headers) or "-")],
         title=ref.key)


# -- verify and gc -------------------------------------------------------------


async def _survey(stores, topic=None):
    """-> (listed objects, {name: TopicInfo}, {(topic, partition): PartitionState})
    for every topic, or one."""
    listed = await stores.objects.list("" if topic is None else f"{topic}/")
    topics = await stores.metadata.topics()
    if topic is not None:
        if topic not in topics:
            raise AdminError(f"no topic {topic!r}")
        topics = {topic: topics[topic]}
    states = {}
    for info in topics.values():
        for partition in range(info.partitions):
            states[info.name, partition] = await stores.metadata.partition_state(info.name, partition)
    return listed, topics, states


def _referenced(states):
    return {key for state in states.values() for ref in state.segments for key in _objects_of(ref)}


def _unreferenced(listed, topics, states, now_ms, grace_ms):
    """(ObjectInfo, kind, why) for each listed object no manifest names,
    except those a writer may still name (see the module's docstring).
    ``kind`` is "orphan" (safe to delete) or "unknown" (not a segment
    object: never deleted)."""
    referenced = _referenced(states)
    for item in listed:
        if item.key in referenced:
            continue
        old = item.modified_ms is not None and now_ms - item.modified_ms >= grace_ms
        if is_object_key(item.key):
            if old:
                yield item, "orphan", "no partition's manifest names it"
            continue
        parts = SEGMENT_KEY.fullmatch(item.key)
        if parts is None:
            yield item, "unknown", "not a segment object"
            continue
        info = topics.get(parts["topic"])
        partition, base, epoch = int(parts["partition"]), int(parts["base"]), int(parts["epoch"])
        if info is None:
            yield item, "orphan", "its topic is deleted"
        elif parts["topic_id"] != info.topic_id.hex:
            yield item, "orphan", "an earlier incarnation of the topic"
        elif partition >= info.partitions:
            yield item, "orphan", "no such partition"
        else:
            state = states[info.name, partition]
            if epoch < state.leader_epoch:
                yield item, "orphan", "written by a deposed owner"
            elif parts["merge"] is not None:
                if old:
                    yield item, "orphan", "a merge or compaction that was never swapped in, or was replaced"
            elif base < state.log_start_offset:
                yield item, "orphan", "below the log start"
            elif base < state.next_offset:
                yield item, "orphan", "an upload that was never committed, or a merge replaced"
            elif old:
                yield item, "orphan", "an upload whose commit failed"


def _objects_of(ref):
    """The keys a manifest entry needs: a format-1 segment has its index
    beside it, a slice of a multi-partition object has none."""
    return (ref.key, index_key(ref.key)) if ref.format == 1 else (ref.key,)


def _check(ref, data, index_data):
    """What is wrong with a manifest entry's objects (its segment frame and,
    for format 1, its index), or None."""
    try:
        segment = read_segment(data, ref.key)
        index = read_index(index_data, index_key(ref.key)) if index_data is not None else None
    except CorruptSegment as e:
        return e.reason if e.key == ref.key else f"index: {e.reason}"
    if index is not None:
        # Each entry must name a batch where it starts: a compacted
        # segment's offsets have gaps that a stale index would fall into.
        starts = {HEADER_SIZE + batch.position: batch.base_offset
                  for batch in iter_batches(segment.batches, verify_crc=False, compacted=True)}
        for offset, position in zip(index.offsets, index.positions):
            if starts.get(position) != offset:
                return f"index: entry ({offset}, {position}) names no batch of the segment"
    found = (segment.base_offset, segment.last_offset, segment.count, segment.size, segment.max_timestamp)
    expected = (ref.base_offset, ref.last_offset, ref.count, ref.size, ref.max_timestamp)
    if found != expected:
        return f"holds (base, last, records, bytes, newest) {found}, the manifest says {expected}"
    return None


def _now_ms():
    return int(time.time() * 1000)


grace_option = click.option(
    "--grace", type=click.IntRange(min=0), default=DEFAULT_GRACE_SECONDS, show_default=True, metavar="SECONDS",
    help="Count an object no manifest names as an orphan only once it is this old, when a writer may still"
         " be about to name it (0 only while no broker runs).")


async def _verify(stores, topic, progress, grace_ms):
    listed, topics, states = await _survey(stores, topic)
    present = {item.key for item in listed}
    if topic is not None:
        # Objects shared with other topics' partitions: present or not, but
        # whether they are orphans only a survey of every topic can tell.
        present.update(item.key for item in await stores.objects.list(OBJECTS_PREFIX))
    problems = [{"problem": kind, "key": item.key, "detail": why}
                for item, kind, why in _unreferenced(listed, topics, states, _now_ms(), grace_ms)]
    to_check = []
    for state in states.values():
        for ref in state.segments:
            missing = [key for key in _objects_of(ref) if key not in present]
            for key in missing:
                problems.append({"problem": "missing", "key": key,
                                 "detail": f"named by the manifest of {state.topic}-{state.partition}"})
            if not missing:
                to_check.append((state.topic, state.partition, ref))
    task = progress.add_task("verifying", total=sum(ref.size for _, _, ref in to_check))
    slots = DeferredSemaphore(CONCURRENT_DOWNLOADS)

    async def check(topic, partition, ref):
        try:
            data = await stores.objects.get(ref.key, ref.position, ref.position + ref.size)
            index_data = await stores.objects.get(index_key(ref.key)) if ref.format == 1 else None
        except ObjectNotFound as e:
            # Retention or a merge may have dropped it since the survey; else it is missing.
            state = await stores.metadata.partition_state(topic, partition)
            if state.segments.position_of(ref) >= 0:
                problems.append({"problem": "missing", "key": e.key, "detail": "vanished while verifying"})
            progress.advance(task, ref.size)
            return
        reason = await deferToThread(_check, ref, data, index_data)
        if reason is not None:
            problems.append({"problem": "corrupt", "key": ref.key, "detail": reason})
        progress.advance(task, ref.size)

    await all_of([slots.run(check, *entry) for entry in to_check])
    return len(to_check), sorted(problems, key=lambda p: p["key"])


@segments.command()
@click.argument("topic", required=False, shell_complete=completing(topic_names))
@grace_option
@output_option
@click.pass_context
def verify(ctx, topic, grace, output):
    """Download and check every segment (of TOPIC, or all): report manifest
    entries without objects, objects without manifest entries, and damaged
    objects. Exits with status 1 when it finds a problem."""
    admin = ctx.obj
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        console=console(stderr=True), transient=True)

    async def work(stores):
        with progress:
            return await _verify(stores, topic, progress, grace * 1000)

    checked, problems = admin.run(work)
    emit(output, problems, [Column("problem"), Column("key"), Column("detail")], f"{checked} segments checked",
         {"checked": checked, "problems": problems}, empty="no problems")
    if problems:
        ctx.exit(1)


@segments.command()
@click.option("--execute", is_flag=True, help="Delete the orphans; without it, only list them.")
@grace_option
@output_option
@click.pass_obj
def gc(admin, execute, grace, output):
    """Delete orphaned objects: those no manifest names and no writer can
    still name (of fenced flushes, of a crash between upload and commit, of
    merges). A dry run unless --execute."""

    async def work(stores):
        listed, topics, states = await _survey(stores)
        orphans = [{"key": item.key, "bytes": item.size, "reason": why}
                   for item, kind, why in _unreferenced(listed, topics, states, _now_ms(), grace * 1000)
                   if kind == "orphan"]
        if execute:
            await all_of([stores.objects.delete(orphan["key"]) for orphan in orphans])
        return orphans

    orphans = admin.run(work)
    total = sum(orphan["bytes"] for orphan in orphans)
    verb = "deleted" if execute else "would delete (dry run, add --execute)"
    title = f"{verb}: {len(orphans)} objects, {total} bytes" if orphans else None
    emit(output, orphans, [Column("key"), number("bytes"), Column("reason")], title,
         {"executed": execute, "orphans": orphans}, empty="no orphans")
