"""Kafka RecordBatch v2: validation, offset assignment, slicing and decoding.

The broker handles record data one batch at a time: a produce request's
records are validated and re-offset by reading and patching batch headers
only, and fetches hand out whole batches. Individual records are decoded only
by the admin CLI and tests (:func:`decode_records`).

A batch on the wire (big-endian)::

    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 |
    crc u32 | attributes i16 | lastOffsetDelta i32 | firstTimestamp i64 |
    maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32 |
    recordCount i32 | records...

``batchLength`` counts the bytes after itself; the CRC-32C covers everything
from ``attributes`` to the end of the batch.
"""

import enum
import gzip
import io
import struct
import zlib
from typing import Iterator, NamedTuple

from crc32c import crc32c

from kafscale.protocol.errors import ErrorCode, KafkaError

BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE = BATCH_HEADER.size  # 61
# baseOffset and batchLength precede the bytes that batchLength counts.
LOG_OVERHEAD = 12
MAGIC = 2

_OFFSET_AND_LENGTH = struct.Struct(">qi")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_MAGIC_POSITION = 16
_PARTITION_LEADER_EPOCH_POSITION = 12
_ATTRIBUTES_POSITION = 21
_LAST_OFFSET_DELTA_POSITION = 23

_CODEC_MASK = 0x07
_TIMESTAMP_TYPE_MASK = 0x08
_TRANSACTIONAL_MASK = 0x10
_CONTROL_MASK = 0x20


class Compression(enum.IntEnum):
    """The codec in a batch's attributes (bits 0-2)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class InvalidRecords(KafkaError):
    """A records blob is not a valid sequence of RecordBatch v2.

    ``code`` is CORRUPT_MESSAGE for damaged bytes (bad CRC, truncation, wrong
    magic) and INVALID_RECORD for well-formed bytes describing an impossible
    batch.
    """


class BatchInfo(NamedTuple):
    """The header of one batch, and where it sits in its blob."""

    position: int
    size: int
    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _CODEC_MASK)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & _TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_MASK)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1


def iter_batches(blob, verify_crc: bool = True) -> Iterator[BatchInfo]:
    """Validate and describe each batch of ``blob``, in order.

    Raises :class:`InvalidRecords` at the first bad batch; a trailing partial
    batch is an error. ``verify_crc=False`` skips the checksum for bytes that
    were verified before (a segment whose CRC-32C the reader checked).
    """
    view = memoryview(blob)
    end = len(view)
    position = 0
    while position < end:
        if end - position < BATCH_HEADER_SIZE:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE,
                f"truncated batch header at byte {position}: {end - position} bytes left",
            )
        size = LOG_OVERHEAD + _INT32.unpack_from(view, position + 8)[0]
        if size < BATCH_HEADER_SIZE:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE,
                f"batch at byte {position} declares {size} bytes, less than its header",
            )
        if position + size > end:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE,
                f"truncated batch at byte {position}: declares {size} bytes, "
                f"{end - position} present",
            )
        magic = view[position + _MAGIC_POSITION]
        if magic != MAGIC:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE,
                f"batch at byte {position} has magic {magic}, only 2 is supported",
            )
        header = BATCH_HEADER.unpack_from(view, position)
        if verify_crc:
            actual = crc32c(view[position + _ATTRIBUTES_POSITION : position + size])
            if actual != header[4]:
                raise InvalidRecords(
                    ErrorCode.CORRUPT_MESSAGE,
                    f"batch at byte {position} fails its CRC-32C "
                    f"(stored {header[4]:#010x}, computed {actual:#010x})",
                )
        info = BatchInfo(position, size, header[0], header[2], *header[5:])
        if info.record_count < 1:
            raise InvalidRecords(
                ErrorCode.INVALID_RECORD,
                f"batch at byte {position} holds {info.record_count} records",
            )
        if info.last_offset_delta != info.record_count - 1:
            raise InvalidRecords(
                ErrorCode.INVALID_RECORD,
                f"batch at byte {position} holds {info.record_count} records "
                f"but its last offset delta is {info.last_offset_delta}",
            )
        if info.attributes & _CODEC_MASK > Compression.ZSTD:
            raise InvalidRecords(
                ErrorCode.INVALID_RECORD,
                f"batch at byte {position} names unknown compression codec "
                f"{info.attributes & _CODEC_MASK}",
            )
        yield info
        position += size


def assign_offsets(blob, batches, base_offset: int, leader_epoch: int | None = None):
    """Copy ``blob`` once, giving its batches consecutive offsets from ``base_offset``.

    ``batches`` is what :func:`iter_batches` returned for ``blob``. Only the
    baseOffset fields change (and partitionLeaderEpoch when ``leader_epoch``
    is given, as Kafka stamps it on append); neither is covered by the CRC.
    Returns ``(bytearray, next_offset)``.
    """
    patched = bytearray(blob)
    next_offset = base_offset
    for batch in batches:
        _INT64.pack_into(patched, batch.position, next_offset)
        if leader_epoch is not None:
            _INT32.pack_into(
                patched, batch.position + _PARTITION_LEADER_EPOCH_POSITION, leader_epoch
            )
        next_offset += batch.last_offset_delta + 1
    return patched, next_offset


def take_batches(blob, offset: int, max_bytes: int, min_one: bool = True) -> memoryview:
    """The whole batches of ``blob`` from the one holding ``offset``, within ``max_bytes``.

    Batches that end before ``offset`` are skipped. With ``min_one`` the first
    batch is returned even when it alone exceeds ``max_bytes``, so a consumer
    always makes progress (Kafka's KIP-74 rule). Reads batch headers only;
    returns a slice of ``blob`` (empty when nothing qualifies). A partial batch
    met before the selection is complete raises CORRUPT_MESSAGE.
    """
    start, end = batch_span(blob, offset, max_bytes, min_one)
    return memoryview(blob)[start:end]


def batch_span(blob, offset: int, max_bytes: int, min_one: bool = True) -> tuple[int, int]:
    """Where :func:`take_batches`' selection lies in ``blob``: ``(start, end)``
    byte positions, equal when nothing qualifies. ``end == len(blob)`` tells
    a reader that the selection ran to the end of the blob."""
    view = memoryview(blob)
    end = len(view)
    position = 0
    start = None
    while position < end:
        if end - position < BATCH_HEADER_SIZE:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE, f"truncated batch header at byte {position}"
            )
        base_offset, length = _OFFSET_AND_LENGTH.unpack_from(view, position)
        size = LOG_OVERHEAD + length
        if size < BATCH_HEADER_SIZE or position + size > end:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"truncated batch at byte {position}")
        if start is None:
            last_offset_delta = _INT32.unpack_from(view, position + _LAST_OFFSET_DELTA_POSITION)[0]
            if base_offset + last_offset_delta >= offset:
                start = position
                if size > max_bytes:
                    return (start, position + size) if min_one else (start, start)
        elif position + size - start > max_bytes:
            return start, position
        position += size
    return (end, end) if start is None else (start, end)


class Record(NamedTuple):
    """One decoded record; ``headers`` is a list of (str, bytes or None)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list


def decode_records(batch) -> list[Record]:
    """Decode every record of one batch, decompressing it if needed.

    For the admin CLI and tests only: this is per-record work. ``batch`` is
    the bytes of exactly one batch; its CRC is verified first.
    """
    batches = list(iter_batches(batch))
    if len(batches) != 1:
        raise ValueError(f"decode_records takes one batch, got {len(batches)}")
    info = batches[0]
    body = bytes(memoryview(batch)[BATCH_HEADER_SIZE : info.size])
    if info.compression is not Compression.NONE:
        body = _DECOMPRESS[info.compression](body)
    try:
        return _parse_records(body, info)
    except IndexError as e:
        raise InvalidRecords(
            ErrorCode.CORRUPT_MESSAGE, "record runs past the end of its batch"
        ) from e


def _parse_records(body: bytes, info: BatchInfo) -> list[Record]:
    records = []
    position = 0
    for _ in range(info.record_count):
        length, position = _read_varint(body, position)
        record_end = position + length
        position += 1  # record attributes: unused
        timestamp_delta, position = _read_varint(body, position)
        offset_delta, position = _read_varint(body, position)
        key, position = _read_bytes(body, position)
        value, position = _read_bytes(body, position)
        header_count, position = _read_varint(body, position)
        headers = []
        for _ in range(header_count):
            header_key, position = _read_bytes(body, position)
            header_value, position = _read_bytes(body, position)
            if header_key is None:
                raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "null record header key")
            headers.append((header_key.decode("utf-8", "replace"), header_value))
        if position != record_end:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE,
                f"record at offset delta {offset_delta} declares {length} bytes, "
                f"its fields take {length + position - record_end}",
            )
        timestamp = (
            info.max_timestamp if info.log_append_time else info.first_timestamp + timestamp_delta
        )
        records.append(Record(info.base_offset + offset_delta, timestamp, key, value, headers))
    if position != len(body):
        raise InvalidRecords(
            ErrorCode.CORRUPT_MESSAGE,
            f"{len(body) - position} bytes follow the batch's {info.record_count} records",
        )
    return records


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """A zigzag varint (Kafka's varint and varlong) at ``position``."""
    result = 0
    shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "varint longer than 10 bytes")


def _read_bytes(data: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = _read_varint(data, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(data):
        raise IndexError(end)
    return data[position:end], end


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise _undecodable(Compression.GZIP, e) from e


# Java's snappy-java frames its output (Kafka's own producer uses it); other
# clients send raw snappy. The framed form starts with this magic and two
# version ints, then (length i32, snappy block) pairs follow.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE = 16


def _unsnappy(data: bytes) -> bytes:
    import snappy

    try:
        if not data.startswith(_XERIAL_MAGIC):
            return snappy.decompress(data)
        chunks = []
        position = _XERIAL_HEADER_SIZE
        while position < len(data):
            (length,) = _INT32.unpack_from(data, position)
            position += 4
            chunks.append(snappy.decompress(data[position : position + length]))
            position += length
        return b"".join(chunks)
    except (snappy.UncompressError, struct.error) as e:
        raise _undecodable(Compression.SNAPPY, e) from e


def _unlz4(data: bytes) -> bytes:
    import lz4.frame

    try:
        return lz4.frame.decompress(data)
    except RuntimeError as e:
        raise _undecodable(Compression.LZ4, e) from e


def _unzstd(data: bytes) -> bytes:
    import zstandard

    # Producers stream zstd frames without a content size: read to the end.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    try:
        return reader.read()
    except zstandard.ZstdError as e:
        raise _undecodable(Compression.ZSTD, e) from e


def _undecodable(codec: Compression, error: Exception) -> InvalidRecords:
    return InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"undecodable {codec.name} payload: {error}")


_DECOMPRESS = {
    Compression.GZIP: _gunzip,
    Compression.SNAPPY: _unsnappy,
    Compression.LZ4: _unlz4,
    Compression.ZSTD: _unzstd,
}
