"""Record batches encoded by a real client library (kafka-python)."""

from kafka.record.default_records import DefaultRecordBatchBuilder

from kafscale.protocol.records import Compression, iter_batches


def build_batch(
    records,
    compression=Compression.NONE,
    first_timestamp=1_700_000_000_000,
    producer=(-1, -1, -1),
):
    """One batch encoded by kafka-python; ``records`` are (key, value, headers)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
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
