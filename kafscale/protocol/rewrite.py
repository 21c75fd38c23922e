"""Rewriting a produced record batch as its topic asks, the way a Kafka
broker does: stamping it with the log append time (KIP-32), and
recompressing it in the topic's codec.

Both are per-batch work: the records are never decoded one by one. Stamping
sets the batch's timestamp type and its max timestamp (what consumers then
show as every record's timestamp); recompressing decompresses the records
body and compresses it again. Either recomputes the CRC. What the producer
wrote otherwise stays: offsets deltas, the first timestamp, the producer id,
epoch and sequence, the records' own bytes.
"""

import gzip
import struct

from crc32c import crc32c

from kafscale.protocol.records import (
    BATCH_HEADER,
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    BatchInfo,
    Compression,
    decompressed_records,
)

_CODEC_MASK = 0x07
_LOG_APPEND_TIME = 0x08
_CRC_COVERS_FROM = 21  # the attributes, after baseOffset, length, epoch, magic and CRC

CODECS = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}
"""compression.type's values (but producer) and the codec each names."""

# snappy-java's stream format, which Kafka's own producer and broker write
# and every client reads: a header, then (length i32, raw snappy block)
# pairs of at most 32 KiB of input each.
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_LZ4_MAX_LEVEL = 16  # the lz4 library's highest; Kafka's 17 means the same there
_GZIP_DEFAULT_LEVEL = 6  # what Kafka's -1 (zlib's default) amounts to


def compress(codec: Compression, data: bytes, level: int | None = None) -> bytes:
    """``data`` compressed as Kafka's codec ``codec`` writes it, at
    ``level`` (None or -1: the codec's default)."""
    if codec == Compression.NONE:
        return data
    if codec == Compression.GZIP:
        return gzip.compress(data, compresslevel=_GZIP_DEFAULT_LEVEL if level in (None, -1) else level, mtime=0)
    if codec == Compression.SNAPPY:
        import snappy

        parts = [_XERIAL_HEADER]
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = snappy.compress(data[start:start + _XERIAL_BLOCK])
            parts += [struct.pack(">i", len(block)), block]
        return b"".join(parts)
    if codec == Compression.LZ4:
        import lz4.frame

        # Independent 64 KiB blocks without a content size, as Kafka's own
        # LZ4 stream writes them (its reader asks for independent blocks).
        return lz4.frame.compress(
            data, compression_level=min(9 if level is None else level, _LZ4_MAX_LEVEL),
            block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False, content_checksum=False,
            store_size=False)
    if codec == Compression.ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    raise ValueError(f"no codec {codec!r}")


def rewrite_batch(batch, info: BatchInfo, *, codec: Compression | None = None, level: int | None = None,
                  log_append_time: int | None = None) -> bytes:
    """One batch (its bytes ``batch``, its header ``info``) rewritten:
    recompressed in ``codec`` unless None or already so, and stamped with
    ``log_append_time`` (ms) unless None. Raises InvalidRecords for a body
    that does not decompress."""
    view = memoryview(batch)[: info.size]
    attributes = info.attributes
    max_timestamp = info.max_timestamp
    if codec is not None and codec != info.compression:
        body = compress(codec, decompressed_records(view, info), level)
        attributes = (attributes & ~_CODEC_MASK) | codec
    else:
        body = view[BATCH_HEADER_SIZE:]
    if log_append_time is not None:
        attributes |= _LOG_APPEND_TIME
        max_timestamp = log_append_time
    rewritten = bytearray(BATCH_HEADER_SIZE + len(body))
    BATCH_HEADER.pack_into(
        rewritten, 0, info.base_offset, BATCH_HEADER_SIZE - LOG_OVERHEAD + len(body), info.partition_leader_epoch,
        MAGIC, 0, attributes, info.last_offset_delta, info.first_timestamp, max_timestamp, info.producer_id,
        info.producer_epoch, info.base_sequence, info.record_count)
    rewritten[BATCH_HEADER_SIZE:] = body
    struct.pack_into(">I", rewritten, 17, crc32c(memoryview(rewritten)[_CRC_COVERS_FROM:]))
    return bytes(rewritten)
