"""The immutable segment objects a partition's log is made of (format 1).

A format-2 object (kafscale.storage.object_format) holds one flush of
many partitions, a slice for each, every slice laid out as the
``.kfs`` below; objects written in format 1 stay readable. A format-1
flush writes two objects per segment (DESIGN.md "Storage format"; all
integers big-endian), under ``{topic}/{topic_id}/{partition}/``: the
``.kfs`` before the commit, the ``.index`` after it, off the ack path (a
reader that finds no index reads the segment whole):

``segment-{base_offset:020d}-{leader_epoch}-{attempt}.kfs``
    a 32-byte header (magic ``KAFS``, version u16 = 1, flags u16, base offset
    i64, message count i32, created unix ms i64, reserved u32), the RecordBatch
    v2 blobs exactly as produced except for their assigned baseOffset, and a
    16-byte footer (CRC-32C u32 of the batch bytes, last offset i64, magic
    ``END!``).

``segment-{base_offset:020d}-{leader_epoch}-{attempt}.index``
    a 16-byte header (magic ``IDX\\0``, version u16 = 1, entry count i32,
    interval i32, reserved u16) and (offset i64, position i32) entries. An
    entry names a batch's base offset and where that batch starts in the
    ``.kfs`` object; the first batch always has one, later batches get one
    once ``interval`` bytes have passed since the previous entry.

A segment written by compaction (kafscale.storage.compaction) has bit 0 of
its header flags set (``COMPACTED``): its batches' offsets increase but may
skip the offsets of dropped records and batches, its footer's last offset
is the last offset of the range it replaced (which its batches may end
before), its count is of the records it kept, and it may hold no batch.

The topic id keeps a re-created topic's objects apart from the deleted
one's (whose removal runs in the background); the leader epoch and the
owner's flush counter keep a late upload (a deposed owner's, or the
owner's own retry after a commit of unknown outcome) from overwriting an
object the manifest names. The object store applies any deployment-wide key prefix itself.

A reader trusts nothing it has not checked: :func:`read_segment` verifies
magic, footer, CRC and the chain of batch headers, and every failure raises
:class:`CorruptSegment` naming the object's key.
"""

import bisect
import struct
import time
from typing import NamedTuple

from crc32c import crc32c

from kafscale.protocol.records import (
    LOG_OVERHEAD,
    InvalidRecords,
    batch_span,
    iter_batches,
    take_batches,
)

SEGMENT_MAGIC = b"KAFS"
FOOTER_MAGIC = b"END!"
INDEX_MAGIC = b"IDX\0"
VERSION = 1
DEFAULT_INDEX_INTERVAL = 4096
COMPACTED = 0x0001
"""Header flag: written by compaction, offsets may skip."""

HEADER = struct.Struct(">4sHHqiqI")
FOOTER = struct.Struct(">Iq4s")
INDEX_HEADER = struct.Struct(">4sHiiH")
_INDEX_ENTRY = struct.Struct(">qi")
HEADER_SIZE = HEADER.size  # 32
FOOTER_SIZE = FOOTER.size  # 16
INDEX_HEADER_SIZE = INDEX_HEADER.size  # 16
INDEX_ENTRY_SIZE = _INDEX_ENTRY.size  # 12

# The batch header fields a segment writer needs, read without a full unpack.
_BATCH_OFFSET_AND_LENGTH = struct.Struct(">qi")
_BATCH_LAST_OFFSET_DELTA = struct.Struct(">i")
_BATCH_MAX_TIMESTAMP = struct.Struct(">q")
_BATCH_RECORD_COUNT = struct.Struct(">i")


class CorruptSegment(Exception):
    """A stored segment or index failed verification."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"corrupt segment object {key!r}: {reason}")


class SegmentKeys(NamedTuple):
    kfs: str
    index: str


class SegmentInfo(NamedTuple):
    """What the manifest records about a segment; ``size`` is the .kfs size."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int
    count: int


def topic_prefix(topic: str, topic_id) -> str:
    """The key prefix of every object of one incarnation of a topic, ending in "/"."""
    return f"{topic}/{topic_id.hex}/"


def partition_prefix(topic: str, topic_id, partition: int) -> str:
    """The key prefix under which one partition's segments live, ending in "/"."""
    return f"{topic_prefix(topic, topic_id)}{partition}/"


def segment_keys(
    topic: str, topic_id, partition: int, base_offset: int, leader_epoch: int, attempt: int
) -> SegmentKeys:
    """The ``.kfs`` and ``.index`` keys of the segment an owner at
    ``leader_epoch`` writes from ``base_offset`` on its ``attempt``-th flush:
    no two uploads ever share a key, so a late PUT cannot replace an object
    the manifest names."""
    stem = (
        f"{partition_prefix(topic, topic_id, partition)}"
        f"segment-{base_offset:020d}-{leader_epoch}-{attempt}"
    )
    return SegmentKeys(f"{stem}.kfs", f"{stem}.index")


def index_key(kfs_key: str) -> str:
    """The ``.index`` key that goes with a ``.kfs`` key."""
    return kfs_key.removesuffix(".kfs") + ".index"


def build_segment(
    batches,
    base_offset: int,
    index_interval: int = DEFAULT_INDEX_INTERVAL,
    created_ms: int | None = None,
    last_offset: int | None = None,
):
    """Lay out a segment and its index from blobs of offset-assigned batches.

    ``batches`` is a sequence of bytes-like blobs (typically one per produce
    request, as :func:`~kafscale.protocol.records.assign_offsets` returned
    them) whose batches carry consecutive offsets from ``base_offset``; they
    were validated on produce, so only their headers are read here.

    A ``last_offset`` makes it a compacted segment (see `segment_frame`).

    Returns ``(kfs_bytes, index_bytes, SegmentInfo)``; the index of a
    compacted segment without batches has no entries.
    """
    parts, entries, info = segment_frame(batches, base_offset, index_interval, created_ms, last_offset)
    index = b"".join(
        [INDEX_HEADER.pack(INDEX_MAGIC, VERSION, len(entries), index_interval, 0), *entries]
    )
    return b"".join(parts), index, info


def segment_frame(
    batches,
    base_offset: int,
    index_interval: int = DEFAULT_INDEX_INTERVAL,
    created_ms: int | None = None,
    last_offset: int | None = None,
):
    """The pieces of a segment, unjoined, so that a caller laying out
    several segments in one object copies the batches only once.

    A ``last_offset`` makes it a compacted segment (``COMPACTED``) of the
    offsets from ``base_offset`` to ``last_offset``: its batches' offsets
    increase within that range, with gaps, and there may be none.

    -> ``(parts, index_entries, SegmentInfo)``: ``b"".join(parts)`` is the
    ``.kfs`` object, the entries (packed) the ``.index`` after its header.
    """
    compacted = last_offset is not None
    if index_interval < 1:
        raise ValueError(f"index interval must be positive, got {index_interval}")
    entries = []
    count = 0
    max_timestamp = -1
    crc = 0
    position = HEADER_SIZE
    last_entry_position = None
    next_offset = base_offset
    for blob in batches:
        view = memoryview(blob)
        crc = crc32c(view, crc)
        local = 0
        while local < len(view):
            batch_offset, length = _BATCH_OFFSET_AND_LENGTH.unpack_from(view, local)
            if batch_offset != next_offset and not (compacted and batch_offset > next_offset):
                raise ValueError(
                    f"batch at segment byte {position} has offset {batch_offset}, "
                    f"expected {next_offset}"
                )
            if last_entry_position is None or position - last_entry_position >= index_interval:
                entries.append(_INDEX_ENTRY.pack(batch_offset, position))
                last_entry_position = position
            next_offset += _BATCH_LAST_OFFSET_DELTA.unpack_from(view, local + 23)[0] + 1
            max_timestamp = max(
                max_timestamp, _BATCH_MAX_TIMESTAMP.unpack_from(view, local + 35)[0]
            )
            count += _BATCH_RECORD_COUNT.unpack_from(view, local + 57)[0]
            size = LOG_OVERHEAD + length
            local += size
            position += size
        if local != len(view):
            raise ValueError(f"blob ending at segment byte {position} splits a batch")
    if compacted:
        if next_offset - 1 > last_offset:
            raise ValueError(f"batches end at offset {next_offset - 1}, past the segment's last {last_offset}")
    elif not entries:
        raise ValueError("a segment needs at least one batch")
    else:
        last_offset = next_offset - 1
    if created_ms is None:
        created_ms = int(time.time() * 1000)
    flags = COMPACTED if compacted else 0
    header = HEADER.pack(SEGMENT_MAGIC, VERSION, flags, base_offset, count, created_ms, 0)
    footer = FOOTER.pack(crc, last_offset, FOOTER_MAGIC)
    size = position + FOOTER_SIZE
    return [header, *batches, footer], entries, SegmentInfo(base_offset, last_offset, max_timestamp, size, count)


class Segment:
    """A verified ``.kfs`` object, as kept in the segment cache.

    ``batches`` is a memoryview of the batch bytes (header and footer
    excluded); ``data`` is the whole object.
    """

    def __init__(
        self, key, data, flags, base_offset, last_offset, count, created_ms, max_timestamp, position=0
    ):
        self.key = key
        self.position = position
        """Where the segment starts in the object at ``key``: 0 but for a
        slice of a multi-partition object."""
        self.data = data
        self.batches = data[HEADER_SIZE:-FOOTER_SIZE]
        self.flags = flags
        self.base_offset = base_offset
        self.last_offset = last_offset
        self.count = count
        self.created_ms = created_ms
        self.max_timestamp = max_timestamp

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, max_bytes: int, min_one: bool = True) -> memoryview:
        """Whole batches from the one holding ``offset``, as in
        :func:`~kafscale.protocol.records.take_batches`."""
        return take_batches(self.batches, offset, max_bytes, min_one)

    def read_to_end(self, offset: int, max_bytes: int, min_one: bool = True) -> tuple[memoryview, bool]:
        """As :meth:`read`, and whether the batches returned run to the
        segment's end (so a reader wanting more goes on to the next one)."""
        start, end = batch_span(self.batches, offset, max_bytes, min_one)
        return self.batches[start:end], end == len(self.batches)


def read_segment(data, key: str, position: int = 0) -> Segment:
    """Verify a whole ``.kfs`` object (or the slice at ``position`` of a
    multi-partition object) and return it as a :class:`Segment`.

    Checks header magic and version, footer magic, the CRC-32C of the batch
    bytes, and that the batch headers chain exactly through the object with
    consecutive offsets matching the header's base offset and count and the
    footer's last offset.
    """
    view = memoryview(data)
    try:
        fields = _verify_segment(view, key)
    except CorruptSegment as e:
        if not position:
            raise
        raise CorruptSegment(key, f"slice at byte {position}: {e.reason}") from None
    return Segment(key, view, *fields, position=position)


def _verify_segment(view, key):
    """-> (flags, base offset, last offset, count, created ms, max timestamp)."""
    if len(view) < HEADER_SIZE + FOOTER_SIZE:
        raise CorruptSegment(key, f"{len(view)} bytes, shorter than header and footer")
    magic, version, flags, base_offset, count, created_ms, _ = HEADER.unpack_from(view, 0)
    compacted = bool(flags & COMPACTED)
    if magic != SEGMENT_MAGIC:
        raise CorruptSegment(key, f"header magic {magic!r}")
    if version != VERSION:
        raise CorruptSegment(key, f"unknown version {version}")
    crc, last_offset, footer_magic = FOOTER.unpack_from(view, len(view) - FOOTER_SIZE)
    if footer_magic != FOOTER_MAGIC:
        raise CorruptSegment(key, f"footer magic {footer_magic!r} (truncated object?)")
    batches = view[HEADER_SIZE:-FOOTER_SIZE]
    actual = crc32c(batches)
    if actual != crc:
        raise CorruptSegment(key, f"CRC-32C {actual:#010x} != stored {crc:#010x}")
    next_offset = base_offset
    records = 0
    max_timestamp = -1
    try:
        for info in iter_batches(batches, verify_crc=False, compacted=compacted):
            if info.base_offset != next_offset and not (compacted and info.base_offset > next_offset):
                raise CorruptSegment(
                    key,
                    f"batch at byte {HEADER_SIZE + info.position} has offset "
                    f"{info.base_offset}, expected {next_offset}",
                )
            next_offset = info.next_offset
            records += info.record_count
            max_timestamp = max(max_timestamp, info.max_timestamp)
    except InvalidRecords as e:
        raise CorruptSegment(key, e.message) from e
    if compacted:
        if next_offset - 1 > last_offset:
            raise CorruptSegment(key, f"footer last offset {last_offset}, batches end at {next_offset - 1}")
    elif next_offset == base_offset:
        raise CorruptSegment(key, "no batches")
    elif next_offset - 1 != last_offset:
        raise CorruptSegment(
            key, f"footer last offset {last_offset}, batches end at {next_offset - 1}"
        )
    if records != count:
        raise CorruptSegment(key, f"header counts {count} records, batches hold {records}")
    return flags, base_offset, last_offset, count, created_ms, max_timestamp


def read_range(data, key: str, offset: int, max_bytes: int, min_one: bool = True) -> memoryview:
    """Whole, CRC-checked batches from a ranged read of a ``.kfs`` object.

    ``data`` holds the bytes of a :meth:`SegmentIndex.byte_range`; the result
    starts at the batch holding ``offset`` as in
    :func:`~kafscale.protocol.records.take_batches`. Without the whole
    object there is no segment CRC to check, so each returned batch's own
    CRC-32C is verified instead.
    """
    try:
        selected = take_batches(data, offset, max_bytes, min_one)
        for _ in iter_batches(selected, compacted=True):
            pass
    except InvalidRecords as e:
        raise CorruptSegment(key, e.message) from e
    return selected


class SegmentIndex:
    """A verified ``.index`` object: sorted batch offsets and their positions."""

    def __init__(self, key, interval, offsets, positions):
        self.key = key
        self.interval = interval
        self.offsets = offsets
        self.positions = positions

    def position(self, offset: int) -> int:
        """Where to start scanning for the batch holding ``offset``: the
        position of the last indexed batch at or below it."""
        return self.positions[max(bisect.bisect_right(self.offsets, offset) - 1, 0)]

    def byte_range(self, offset: int, max_bytes: int, segment_size: int) -> tuple[int, int]:
        """The ``[start, end)`` byte range of the ``.kfs`` object to GET for a fetch.

        Both ends fall on batch boundaries. The range holds the whole batch
        with ``offset`` and at least ``max_bytes`` of batches after that
        batch's start (or everything to the end of the batches); it reads at
        most about one index interval and two batches more than needed.
        """
        batches_end = segment_size - FOOTER_SIZE
        if not self.offsets:
            return batches_end, batches_end
        # Below the first offset, the first batch is the one to read.
        following = max(bisect.bisect_right(self.offsets, offset), 1)
        start = self.positions[following - 1]
        if following == len(self.offsets):
            return start, batches_end
        # The batch holding ``offset`` ends at or before the next indexed batch.
        wanted = self.positions[following] + max_bytes
        boundary = bisect.bisect_left(self.positions, wanted)
        end = self.positions[boundary] if boundary < len(self.positions) else batches_end
        return start, end


def read_index(data, key: str) -> SegmentIndex:
    """Verify an ``.index`` object and return it as a :class:`SegmentIndex`."""
    view = memoryview(data)
    if len(view) < INDEX_HEADER_SIZE:
        raise CorruptSegment(key, f"index of {len(view)} bytes, shorter than its header")
    magic, version, entry_count, interval, _ = INDEX_HEADER.unpack_from(view, 0)
    if magic != INDEX_MAGIC:
        raise CorruptSegment(key, f"index magic {magic!r}")
    if version != VERSION:
        raise CorruptSegment(key, f"unknown index version {version}")
    # No entry: a compacted segment that kept no batch.
    if entry_count < 0 or len(view) != INDEX_HEADER_SIZE + entry_count * INDEX_ENTRY_SIZE:
        raise CorruptSegment(key, f"index declares {entry_count} entries in {len(view)} bytes")
    offsets = []
    positions = []
    for offset, position in _INDEX_ENTRY.iter_unpack(view[INDEX_HEADER_SIZE:]):
        if offsets and (offset <= offsets[-1] or position <= positions[-1]):
            raise CorruptSegment(key, f"index entries out of order at offset {offset}")
        offsets.append(offset)
        positions.append(position)
    if positions and positions[0] != HEADER_SIZE:
        raise CorruptSegment(key, f"first index entry at byte {positions[0]}, not {HEADER_SIZE}")
    return SegmentIndex(key, interval, offsets, positions)
