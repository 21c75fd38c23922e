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
DELETE_HORIZON_MASK = 0x40
"""Set by compaction (Kafka's KIP-534): the batch's firstTimestamp is the
time after which its tombstones may be removed."""


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


def iter_batches(blob, verify_crc: bool = True, compacted: bool = False) -> Iterator[BatchInfo]:
    """Validate and describe each batch of ``blob``, in order.

    Raises :class:`InvalidRecords` at the first bad batch; a trailing partial
    batch is an error. ``verify_crc=False`` skips the checksum for bytes that
    were verified before (a segment whose CRC-32C the reader checked).
    ``compacted`` accepts what compaction leaves of a batch: fewer records
    than its offsets span, or none (the header kept for its producer).
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
        if compacted:
            if not 0 <= info.record_count <= info.last_offset_delta + 1:
                raise InvalidRecords(
                    ErrorCode.INVALID_RECORD,
                    f"batch at byte {position} holds {info.record_count} records "
                    f"in {info.last_offset_delta + 1} offsets",
                )
        elif info.record_count < 1:
            raise InvalidRecords(
                ErrorCode.INVALID_RECORD,
                f"batch at byte {position} holds {info.record_count} records",
            )
        elif info.last_offset_delta != info.record_count - 1:
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


# A compressed batch can expand to any size (32 KiB of zstd hold 1 GiB of
# zeros): its records are decompressed a chunk at a time, never whole, and a
# batch that expands past this bound is refused as corrupt. Legitimate
# batches are at most message.max.bytes (1 MiB) compressed.
MAX_DECOMPRESSED_BATCH = 64 << 20
_CHUNK = 1 << 16


def decode_records(batch) -> list[Record]:
    """Decode every record of one batch, decompressing it if needed.

    For the admin CLI and tests only: this is per-record work. ``batch`` is
    the bytes of exactly one batch; its CRC is verified first.
    """
    return list(iter_records(batch))


def iter_records(batch, with_data: bool = True, max_size: int = MAX_DECOMPRESSED_BATCH) -> Iterator[Record]:
    """Decode the records of one batch as they are decompressed: memory stays
    at one chunk (plus one record's key, value and headers, or nothing of
    them when ``with_data`` is false: then they are None and []). Raises
    :class:`InvalidRecords` for a damaged batch, or one that expands past
    ``max_size`` bytes."""
    batches = list(iter_batches(batch, compacted=True))
    if len(batches) != 1:
        raise ValueError(f"iter_records takes one batch, got {len(batches)}")
    info = batches[0]
    body = memoryview(batch)[BATCH_HEADER_SIZE : info.size]
    stream = _RecordStream(info.compression, body, max_size)
    for _ in range(info.record_count):
        yield _read_record(stream, info, with_data)
    if not stream.at_end():
        raise InvalidRecords(
            ErrorCode.CORRUPT_MESSAGE, f"bytes follow the batch's {info.record_count} records"
        )


def records_bytes(batch, info: BatchInfo, max_size: int = MAX_DECOMPRESSED_BATCH) -> bytes:
    """The records of one batch (``batch`` its bytes, verified, described by
    ``info``) as one decompressed string. Raises :class:`InvalidRecords` for
    a damaged body or one that expands past ``max_size`` bytes."""
    body = memoryview(batch)[BATCH_HEADER_SIZE : info.size]
    if info.compression == Compression.NONE:
        return bytes(body)
    stream = _RecordStream(info.compression, body, max_size)
    chunks = []
    while not stream.at_end():
        chunks.append(stream.take(len(stream.buffer) - stream.position))
    return b"".join(chunks)


def _read_record(stream, info: BatchInfo, with_data: bool) -> Record:
    length = stream.varint()
    record_end = stream.consumed + length
    stream.skip(1)  # record attributes: unused
    timestamp_delta = stream.varint()
    offset_delta = stream.varint()
    key = stream.data(with_data)
    value = stream.data(with_data)
    headers = []
    for _ in range(stream.varint()):
        header_key = stream.data(True)
        header_value = stream.data(with_data)
        if header_key is None:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "null record header key")
        if with_data:
            headers.append((header_key.decode("utf-8", "replace"), header_value))
    if stream.consumed != record_end:
        raise InvalidRecords(
            ErrorCode.CORRUPT_MESSAGE,
            f"record at offset delta {offset_delta} declares {length} bytes, "
            f"its fields take {length + stream.consumed - record_end}",
        )
    timestamp = info.max_timestamp if info.log_append_time else info.first_timestamp + timestamp_delta
    return Record(info.base_offset + offset_delta, timestamp, key, value, headers)


class _RecordStream:
    """The decompressed records of one batch, read a chunk at a time."""

    def __init__(self, codec: Compression, body: memoryview, max_size: int):
        self.codec = codec
        self.reader = _READERS[codec](body, max_size)
        self.max_size = max_size
        self.buffer = bytearray()
        self.position = 0
        self.consumed = 0  # bytes of the body read so far
        self.expanded = 0  # bytes decompressed so far

    def _more(self, wanted: int) -> None:
        """Read until ``wanted`` bytes are buffered past the position."""
        del self.buffer[: self.position]
        self.position = 0
        while len(self.buffer) < wanted:
            try:
                chunk = self.reader.read(max(_CHUNK, wanted - len(self.buffer)))
            except _DECODE_ERRORS as e:
                raise InvalidRecords(
                    ErrorCode.CORRUPT_MESSAGE, f"undecodable {self.codec.name} payload: {e}"
                ) from e
            if not chunk:
                raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "record runs past the end of its batch")
            self.expanded += len(chunk)
            if self.expanded > self.max_size:
                raise InvalidRecords(
                    ErrorCode.CORRUPT_MESSAGE, f"batch expands past {self.max_size} bytes"
                )
            self.buffer += chunk

    def take(self, size: int) -> bytes:
        if len(self.buffer) - self.position < size:
            self._more(size)
        start = self.position
        self.position += size
        self.consumed += size
        return bytes(self.buffer[start : self.position])

    def skip(self, size: int) -> None:
        while size:
            if len(self.buffer) == self.position:
                self._more(1)
            step = min(size, len(self.buffer) - self.position)
            self.position += step
            self.consumed += step
            size -= step

    def varint(self) -> int:
        """A zigzag varint (Kafka's varint and varlong)."""
        result = shift = 0
        while True:
            if len(self.buffer) == self.position:
                self._more(1)
            byte = self.buffer[self.position]
            self.position += 1
            self.consumed += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, "varint longer than 10 bytes")

    def data(self, keep: bool) -> bytes | None:
        """A length-prefixed byte string; None when null or not ``keep``."""
        length = self.varint()
        if length < 0:
            return None
        if keep:
            return self.take(length)
        self.skip(length)
        return None

    def at_end(self) -> bool:
        if len(self.buffer) > self.position:
            return False
        try:
            self._more(1)
        except InvalidRecords:
            return True
        return False


# Java's snappy-java frames its output (Kafka's own producer uses it); other
# clients send raw snappy. The framed form starts with this magic and two
# version ints, then (length i32, snappy block) pairs follow.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE = 16


class _SnappyBlocks:
    """Raw snappy, or snappy-java's framing, one block at a time; a block's
    declared size is checked before it is decompressed."""

    def __init__(self, body, max_size):
        self.data = bytes(body)
        self.max_size = max_size
        self.blocks = self._blocks()

    def _blocks(self):
        import snappy

        if not self.data.startswith(_XERIAL_MAGIC):
            yield self._decompress(snappy, self.data)
            return
        position = _XERIAL_HEADER_SIZE
        while position < len(self.data):
            (length,) = _INT32.unpack_from(self.data, position)
            position += 4
            yield self._decompress(snappy, self.data[position : position + length])
            position += length

    def _decompress(self, snappy, block):
        # A raw snappy block starts with its decompressed size, a varint.
        size = shift = 0
        for byte in block[:5]:
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if size > self.max_size:
            raise snappy.UncompressError(f"block declares {size} bytes")
        return snappy.decompress(block)

    def read(self, size):
        return next(self.blocks, b"")


def _zstd_reader(body, max_size):
    import zstandard

    # Producers stream zstd frames without a content size: read to the end.
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)


def _lz4_reader(body, max_size):
    import lz4.frame

    return lz4.frame.LZ4FrameFile(io.BytesIO(body))


_READERS = {
    Compression.NONE: lambda body, max_size: io.BytesIO(body),
    Compression.GZIP: lambda body, max_size: gzip.GzipFile(fileobj=io.BytesIO(body)),
    Compression.SNAPPY: _SnappyBlocks,
    Compression.LZ4: _lz4_reader,
    Compression.ZSTD: _zstd_reader,
}


def _decode_errors():
    import lz4.frame  # noqa: F401  (its errors are RuntimeErrors)
    import snappy
    import zstandard

    return (OSError, EOFError, zlib.error, RuntimeError, struct.error, snappy.UncompressError, zstandard.ZstdError)


_DECODE_ERRORS = _decode_errors()


# Control batches: the COMMIT and ABORT markers that end a transaction in
# each of its partitions. One record whose key is (version 0, type) and
# whose value is (version 0, coordinator epoch), as Kafka writes them.

CONTROL_ABORT = 0
CONTROL_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")


def _zigzag(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def control_batch(producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                  timestamp_ms: int) -> bytes:
    """A transaction marker for ``producer_id`` at ``producer_epoch``, as a
    batch at offset 0 (offsets are assigned when it is flushed)."""
    key = _CONTROL_KEY.pack(0, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = _CONTROL_VALUE.pack(0, coordinator_epoch)
    body = (b"\x00" + _zigzag(0) + _zigzag(0) + _zigzag(len(key)) + key + _zigzag(len(value)) + value
            + _zigzag(0))
    record = _zigzag(len(body)) + body
    attributes = _TRANSACTIONAL_MASK | _CONTROL_MASK
    header = BATCH_HEADER.pack(0, BATCH_HEADER_SIZE - LOG_OVERHEAD + len(record), 0, MAGIC, 0, attributes, 0,
                               timestamp_ms, timestamp_ms, producer_id, producer_epoch, -1, 1)
    batch = bytearray(header + record)
    crc = crc32c(bytes(batch[_ATTRIBUTES_POSITION:]))
    struct.pack_into(">I", batch, _ATTRIBUTES_POSITION - 4, crc)
    return bytes(batch)


def decompressed_records(batch, info: BatchInfo, max_size: int = MAX_DECOMPRESSED_BATCH) -> bytes:
    """The records of one batch (``batch`` holds its bytes, ``info`` its
    header), decompressed whole: for the broker's recompression, which is
    per-batch work done off the reactor. Raises :class:`InvalidRecords`
    for an undecodable body or one that expands past ``max_size``."""
    body = memoryview(batch)[BATCH_HEADER_SIZE : info.size]
    if info.compression == Compression.NONE:
        return bytes(body)
    reader = _READERS[info.compression](body, max_size)
    chunks = []
    expanded = 0
    while True:
        try:
            chunk = reader.read(_CHUNK)
        except _DECODE_ERRORS as e:
            raise InvalidRecords(
                ErrorCode.CORRUPT_MESSAGE, f"undecodable {info.compression.name} payload: {e}"
            ) from e
        if not chunk:
            return b"".join(chunks)
        expanded += len(chunk)
        if expanded > max_size:
            raise InvalidRecords(ErrorCode.CORRUPT_MESSAGE, f"batch expands past {max_size} bytes")
        chunks.append(chunk)
