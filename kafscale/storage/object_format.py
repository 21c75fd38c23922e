"""Format 2: one object per broker flush, holding a slice for every
partition the flush carried.

Format 1 (:mod:`kafscale.storage.segment`) is one object per partition per
flush, so a broker's PUTs grow with the partitions its producers spread
over. A format-2 object carries every partition of one flush, so a broker
makes one PUT per flush whatever the partition count. All integers are
big-endian:

``header`` (20 bytes)
    magic ``KAFS``, version u16 = 2, flags u16 = 0, created unix ms i64,
    slice count u32.
``slices``
    one per partition, each a complete format-1 segment frame (its 32-byte
    header, the RecordBatch v2 blobs with their assigned offsets, its
    16-byte footer with the CRC-32C of the batches).
``directory``
    one entry per slice: topic id (16-byte UUID), partition i32, position
    u64, size u32, base offset i64, last offset i64, record count i32, max
    timestamp i64, topic name (u16 length, UTF-8).
``footer`` (20 bytes)
    directory position u64, directory length u32, CRC-32C u32 of the
    directory, magic ``DIR!``.

A partition's manifest entry names the object's key and its slice's byte
range (``SegmentRef.position`` and ``size``, with ``format`` 2), so a
reader GETs only its slice, and the slice verifies as a format-1 segment
(:func:`~kafscale.storage.segment.read_segment`): the read path is the
same for both formats. The directory is not on that path; it tells tools
(and garbage collection) which partitions an object holds, from the
object alone.

A format-1 reader refuses a format-2 object (unknown version 2), and
everything written in format 1 stays readable: its manifest entries have
``format`` 1, position 0 and the whole object's size.

Keys: ``~objects/{created ms:013d}-{node id}-{nonce}.kfs``. No topic's
prefix can match them ("~" is not allowed in topic names), names sort by
creation time, and the random nonce keeps every upload's key its own (a
late PUT never replaces an object a manifest names). A format-2 object is
deleted only when no manifest entry names it any more, by the garbage
collection that owns shared objects, never by retention or topic
deletion, which only drop manifest entries.
"""

import os
import struct
import uuid
from typing import NamedTuple

from crc32c import crc32c

from kafscale.storage.segment import (
    SEGMENT_MAGIC,
    CorruptSegment,
    SegmentInfo,
    read_segment,
    segment_frame,
)

FORMAT = 2
OBJECTS_PREFIX = "~objects/"
DIRECTORY_MAGIC = b"DIR!"

OBJECT_HEADER = struct.Struct(">4sHHqI")
OBJECT_FOOTER = struct.Struct(">QII4s")
_ENTRY = struct.Struct(">16siQIqqiqH")
OBJECT_HEADER_SIZE = OBJECT_HEADER.size  # 20
OBJECT_FOOTER_SIZE = OBJECT_FOOTER.size  # 20


class Slice(NamedTuple):
    """One partition's slice of a format-2 object, as its directory lists it."""

    topic: str
    topic_id: uuid.UUID
    partition: int
    position: int
    size: int
    base_offset: int
    last_offset: int
    count: int
    max_timestamp: int


class SliceBatches(NamedTuple):
    """What a flush puts in a slice: ``blobs`` of offset-assigned batches
    continuing the partition's log at ``base_offset``."""

    topic: str
    topic_id: uuid.UUID
    partition: int
    base_offset: int
    blobs: list


def object_key(node_id: int, created_ms: int) -> str:
    """A new key for a format-2 object written by broker ``node_id``."""
    return f"{OBJECTS_PREFIX}{created_ms:013d}-{node_id}-{os.urandom(8).hex()}.kfs"


def is_object_key(key: str) -> bool:
    """Whether ``key`` names a format-2 (multi-partition) object."""
    return key.startswith(OBJECTS_PREFIX)


def build_object(slices, created_ms: int) -> tuple[bytes, list[Slice]]:
    """Lay out one object from ``slices`` (SliceBatches, at most one per
    partition). -> ``(object bytes, [Slice])``, the slices in the order
    given. The batches are copied once."""
    parts = [OBJECT_HEADER.pack(SEGMENT_MAGIC, FORMAT, 0, created_ms, len(slices))]
    position = OBJECT_HEADER_SIZE
    directory = []
    for batches in slices:
        frame, _, info = segment_frame(batches.blobs, batches.base_offset, created_ms=created_ms)
        parts.extend(frame)
        directory.append(_slice(batches, position, info))
        position += info.size
    entries = b"".join(_pack_entry(entry) for entry in directory)
    parts.append(entries)
    parts.append(OBJECT_FOOTER.pack(position, len(entries), crc32c(entries), DIRECTORY_MAGIC))
    return b"".join(parts), directory


def _slice(batches: SliceBatches, position: int, info: SegmentInfo) -> Slice:
    return Slice(batches.topic, batches.topic_id, batches.partition, position, info.size, info.base_offset,
                 info.last_offset, info.count, info.max_timestamp)


def _pack_entry(entry: Slice) -> bytes:
    name = entry.topic.encode()
    return _ENTRY.pack(entry.topic_id.bytes, entry.partition, entry.position, entry.size, entry.base_offset,
                       entry.last_offset, entry.count, entry.max_timestamp, len(name)) + name


def read_footer(tail, key: str, object_size: int) -> tuple[int, int, int]:
    """-> (directory position, directory length, directory CRC) from the
    last OBJECT_FOOTER_SIZE bytes of an object of ``object_size`` bytes."""
    if len(tail) < OBJECT_FOOTER_SIZE:
        raise CorruptSegment(key, f"{len(tail)} bytes, shorter than an object footer")
    position, length, crc, magic = OBJECT_FOOTER.unpack_from(tail, len(tail) - OBJECT_FOOTER_SIZE)
    if magic != DIRECTORY_MAGIC:
        raise CorruptSegment(key, f"object footer magic {magic!r} (truncated object?)")
    if position < OBJECT_HEADER_SIZE or position + length + OBJECT_FOOTER_SIZE != object_size:
        raise CorruptSegment(key, f"directory at {position}+{length} does not end where the footer starts")
    return position, length, crc


def read_directory(data, key: str, crc: int) -> list[Slice]:
    """Verify and parse a directory's bytes (as :func:`read_footer` located
    them). -> its Slices, in position order."""
    view = memoryview(data)
    actual = crc32c(view)
    if actual != crc:
        raise CorruptSegment(key, f"directory CRC-32C {actual:#010x} != stored {crc:#010x}")
    slices = []
    at = 0
    end_of_previous = OBJECT_HEADER_SIZE
    while at < len(view):
        if at + _ENTRY.size > len(view):
            raise CorruptSegment(key, f"directory entry at byte {at} is truncated")
        topic_id, partition, position, size, base, last, count, max_timestamp, name_length = \
            _ENTRY.unpack_from(view, at)
        at += _ENTRY.size
        name = bytes(view[at:at + name_length]).decode("utf-8", "replace")
        at += name_length
        if position != end_of_previous:
            raise CorruptSegment(key, f"slice of {name}-{partition} at byte {position}, expected {end_of_previous}")
        end_of_previous = position + size
        slices.append(Slice(name, uuid.UUID(bytes=topic_id), partition, position, size, base, last, count,
                            max_timestamp))
    if at != len(view):
        raise CorruptSegment(key, "directory runs past its length")
    return slices


def read_object_header(data, key: str) -> tuple[int, int]:
    """-> (created ms, slice count) from an object's first bytes."""
    if len(data) < OBJECT_HEADER_SIZE:
        raise CorruptSegment(key, f"{len(data)} bytes, shorter than an object header")
    magic, version, _, created_ms, count = OBJECT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise CorruptSegment(key, f"header magic {magic!r}")
    if version != FORMAT:
        raise CorruptSegment(key, f"format {version}, not a multi-partition object")
    return created_ms, count


def object_version(data) -> int | None:
    """The format version an object's first bytes declare (1 for a
    segment, 2 for a multi-partition object), or None if they are not
    Kafscale's."""
    if len(data) < 6 or bytes(data[:4]) != SEGMENT_MAGIC:
        return None
    return struct.unpack_from(">H", data, 4)[0]


def read_object(data, key: str, verify_slices: bool = True) -> tuple[int, list[Slice]]:
    """Verify a whole format-2 object: header, footer, directory and (with
    ``verify_slices``) every slice as a segment matching its entry.
    -> (created ms, [Slice])."""
    view = memoryview(data)
    created_ms, count = read_object_header(view, key)
    position, length, crc = read_footer(view, key, len(view))
    slices = read_directory(view[position:position + length], key, crc)
    if len(slices) != count:
        raise CorruptSegment(key, f"header counts {count} slices, directory lists {len(slices)}")
    if (slices[-1].position + slices[-1].size if slices else OBJECT_HEADER_SIZE) != position:
        raise CorruptSegment(key, f"slices end before the directory at byte {position}")
    if verify_slices:
        for entry in slices:
            segment = read_segment(view[entry.position:entry.position + entry.size], key, entry.position)
            if (segment.base_offset, segment.last_offset, segment.count) != \
                    (entry.base_offset, entry.last_offset, entry.count):
                raise CorruptSegment(key, f"slice of {entry.topic}-{entry.partition} does not match its entry")
    return created_ms, slices
