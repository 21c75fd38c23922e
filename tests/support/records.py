"""Record batches encoded by a real client library (kafka-python)."""

from kafka.record.default_records import DefaultRecordBatchBuilder

from kafscale.protocol.records import Compression, iter_batches


def build_batch(
    records,
    compression=Compression.NONE,
    first_timestamp=1_700_000_000_000,
    producer=(-1, -1, -1),
    transactional=False,
):
    """One batch encoded by kafka-python; ``records`` are (key, value, headers)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=transactional,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        batch_size=1 << 30,
    )
    for delta, (key, value, headers) in enumerate(records):
        builder.append(
            delta, timestamp=first_timestamp + 10 * delta, key=key, value=value, headers=headers
        )
    return bytes(builder.build())


def simple_batch(count, size=20, **kwargs):
    """``count`` records of ``size``-byte values, keyed k0, k1, ..."""
    return build_batch([(b"k%d" % i, b"v" * size, []) for i in range(count)], **kwargs)


# The producer id of producer_batch unless a test names another.
PRODUCER = 4242


def producer_batch(sequence, count=1, epoch=0, producer=PRODUCER):
    """(blob, batches) of one batch of ``count`` records from idempotent
    ``producer`` at ``epoch``, starting at ``sequence``."""
    blob = build_batch([(b"k", b"v%d" % i, []) for i in range(count)], producer=(producer, epoch, sequence))
    return blob, list(iter_batches(blob))


def _zigzag(value):
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def bomb_batch(expanded=1 << 30, first_timestamp=1_700_000_000_000):
    """A zstd batch of a few dozen KiB that decompresses to ``expanded``
    bytes: two well-formed records, the first with a value of ``expanded``
    zeros, the second 10 ms later."""
    import struct

    import zstandard
    from crc32c import crc32c

    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    parts = []

    def record(offset_delta, value_size):
        fields = (b"\x00" + _zigzag(10 * offset_delta) + _zigzag(offset_delta) + _zigzag(-1)
                  + _zigzag(value_size))
        length = len(fields) + value_size + 1  # and the header count
        parts.append(compressor.compress(_zigzag(length) + fields))
        chunk = bytes(1 << 20)
        for start in range(0, value_size, len(chunk)):
            parts.append(compressor.compress(chunk[: min(len(chunk), value_size - start)]))
        parts.append(compressor.compress(_zigzag(0)))

    record(0, expanded)
    record(1, 1)
    parts.append(compressor.flush())
    body = b"".join(parts)
    attributes = Compression.ZSTD
    after_crc = struct.pack(">hiqqqhii", attributes, 1, first_timestamp, first_timestamp + 10, -1, -1, -1, 2) + body
    crc = crc32c(after_crc)
    return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2, crc) + after_crc
