"""A batch's records read whole and a batch written anew: what compaction
needs to drop records from a batch while keeping its offsets.

A rewritten batch keeps what identifies it in the log: its base offset,
its last offset delta (so the offsets of the records it keeps, and of the
batch after it, never change), its partition leader epoch, producer id,
epoch and base sequence (so a producer's state rebuilt from the log stays
right), its codec, timestamp type and transactional and control bits. Its
records keep their offset deltas; their timestamps are written relative
to the new first timestamp, so every client computes the same timestamps
as before. This is per-record work: it runs on a worker thread.

A record (Kafka's v2 record)::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value | headerCount varint | headers
"""

import gzip
import struct
from typing import NamedTuple

from crc32c import crc32c

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.records import (
    BATCH_HEADER,
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MAX_DECOMPRESSED_BATCH,
    BatchInfo,
    Compression,
    InvalidRecords,
    records_bytes,
)


class RawRecord(NamedTuple):
    """One record of a batch, as compaction needs it."""

    offset_delta: int
    timestamp: int
    key: bytes | None
    tombstone: bool
    """Its value is null."""
    rest: bytes
    """The value and headers, exactly as stored (from the value's length on)."""


def _varint(data, position):
    """-> (the zigzag varint at ``position``, the position after it)."""
    result = shift = 0
    while True:
        try:
            byte = data[position]
        except IndexError:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "record runs past the end of its batch") from None
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "varint longer than 10 bytes")


def _zigzag(value):
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return out


def read_records(batch, info: BatchInfo, max_size: int = MAX_DECOMPRESSED_BATCH) -> list[RawRecord]:
    """Every record of one verified batch (``batch`` its bytes, ``info`` its
    header). Raises :class:`InvalidRecords` for a damaged one."""
    data = records_bytes(batch, info, max_size)
    records = []
    position = 0
    end = len(data)
    first_timestamp = info.max_timestamp if info.log_append_time else info.first_timestamp
    fixed = info.log_append_time
    try:
        for _ in range(info.record_count):
            # Most varints here are one byte: read those inline.
            byte = data[position]
            if byte < 0x80:
                length, position = (byte >> 1) ^ -(byte & 1), position + 1
            else:
                length, position = _varint(data, position)
            record_end = position + length
            if length < 0 or record_end > end:
                raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"record of {length} bytes runs past its batch")
            timestamp_delta, position = _varint(data, position + 1)
            byte = data[position]
            if byte < 0x80:
                offset_delta, position = (byte >> 1) ^ -(byte & 1), position + 1
            else:
                offset_delta, position = _varint(data, position)
            byte = data[position]
            if byte < 0x80:
                key_length, position = (byte >> 1) ^ -(byte & 1), position + 1
            else:
                key_length, position = _varint(data, position)
            key = None
            if key_length >= 0:
                key = data[position:position + key_length]
                position += key_length
            # A null value's length is -1, the one byte 0x01.
            tombstone = data[position] == 1
            timestamp = first_timestamp if fixed else first_timestamp + timestamp_delta
            records.append(RawRecord(offset_delta, timestamp, key, tombstone, data[position:record_end]))
            position = record_end
    except IndexError:
        raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "record runs past the end of its batch") from None
    if position != end:
        raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"bytes follow the batch's {info.record_count} records")
    return records


def keyless_record(batch, info: BatchInfo) -> int | None:
    """The offset delta of the first record of the batch without a key, or
    None when every record has one."""
    for record in read_records(batch, info):
        if record.key is None:
            return record.offset_delta
    return None


_CODEC_MASK = 0x07

# Java's snappy-java framing, which every client reads: magic, version 1,
# compatible version 1, then (length i32, raw snappy block) pairs.
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 << 10


def _snappy(data):
    import snappy

    parts = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = snappy.compress(bytes(data[start:start + _XERIAL_BLOCK]))
        parts += [struct.pack(">i", len(block)), block]
    return b"".join(parts)


def _lz4(data):
    import lz4.frame

    # Independent 64 KiB blocks without a content checksum: the frame every
    # client's LZ4 reader (Kafka's own included) accepts.
    return lz4.frame.compress(bytes(data), block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False,
                              content_checksum=False)


def _zstd(data):
    import zstandard

    return zstandard.ZstdCompressor().compress(bytes(data))


_COMPRESSORS = {
    Compression.NONE: bytes,
    Compression.GZIP: lambda data: gzip.compress(bytes(data), compresslevel=6, mtime=0),
    Compression.SNAPPY: _snappy,
    Compression.LZ4: _lz4,
    Compression.ZSTD: _zstd,
}


def rewrite_batch(info: BatchInfo, records, attributes: int, first_timestamp: int) -> bytes:
    """``info``'s batch holding only ``records`` (RawRecords read from it,
    in order), with ``attributes`` and ``first_timestamp`` (the first kept
    record's timestamp, or a delete horizon). Offsets, producer fields and
    codec stay as they were; no records leaves the bare header."""
    body = bytearray()
    max_timestamp = info.max_timestamp
    if records and not info.log_append_time:
        max_timestamp = max(record.timestamp for record in records)
    for record in records:
        encoded = bytearray(b"\0")  # record attributes: unused
        encoded += _zigzag(record.timestamp - first_timestamp)
        encoded += _zigzag(record.offset_delta)
        if record.key is None:
            encoded += _zigzag(-1)
        else:
            encoded += _zigzag(len(record.key))
            encoded += record.key
        encoded += record.rest
        body += _zigzag(len(encoded))
        body += encoded
    if records:
        body = _COMPRESSORS[info.compression](body)
    else:
        # An empty body is not a compressed one (Kafka writes such headers
        # uncompressed too).
        attributes &= ~_CODEC_MASK
    size = BATCH_HEADER_SIZE + len(body)
    header = bytearray(BATCH_HEADER.pack(
        info.base_offset, size - LOG_OVERHEAD, info.partition_leader_epoch, MAGIC, 0, attributes,
        info.last_offset_delta, first_timestamp, max_timestamp, info.producer_id, info.producer_epoch,
        info.base_sequence, len(records)))
    crc = crc32c(body, crc32c(memoryview(header)[21:]))
    struct.pack_into(">I", header, 17, crc)
    return bytes(header) + bytes(body)
