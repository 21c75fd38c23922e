"""What a topic's configs ask a broker to do to the batches produced to
it, and the one queue that does it.

``message.timestamp.type=LogAppendTime`` has the broker stamp each batch
with the time it appends it; a ``compression.type`` other than
``producer`` has it recompress batches that arrive in another codec (see
:mod:`kafscale.protocol.rewrite`). Both cost CPU in proportion to the
batch, so they run in a thread, one batch at a time for the whole broker:
a flood of produce to recompressing topics takes at most one core from the
broker, and batches are rewritten, hence appended, in the order they
arrived.
"""

from typing import NamedTuple

from twisted.internet.defer import DeferredLock
from twisted.internet.threads import deferToThread

from kafscale.metadata.topic_configs import effective
from kafscale.protocol.records import Compression
from kafscale.protocol.rewrite import CODECS, rewrite_batch

_LEVELS = {Compression.GZIP: "compression.gzip.level", Compression.LZ4: "compression.lz4.level",
           Compression.ZSTD: "compression.zstd.level"}


class Rewrite(NamedTuple):
    """How to rewrite a batch: recompress in ``codec`` (None: keep the
    producer's) at ``level``; stamp ``log_append_time`` (None: keep the
    producer's timestamps)."""

    codec: Compression | None
    level: int | None
    log_append_time: int | None


def rewrite_for(configs, now_ms):
    """The Rewrite a topic with ``configs`` asks for of a batch appended at
    ``now_ms``, or None when it keeps batches as produced."""
    compression = effective(configs, "compression.type")
    codec = None if compression == "producer" else CODECS[compression]
    level = int(effective(configs, _LEVELS[codec])) if codec in _LEVELS else None
    stamp = now_ms if effective(configs, "message.timestamp.type") == "LogAppendTime" else None
    if codec is None and stamp is None:
        return None
    return Rewrite(codec, level, stamp)


class BatchRewriter:
    """Rewrites batches in a thread, one at a time, in the order asked."""

    def __init__(self):
        self._turns = DeferredLock()

    def rewrite(self, blob, batch, rewrite):
        """``blob``, holding the one batch ``batch`` describes, rewritten as
        ``rewrite`` says. -> a Deferred of the new bytes (failing with
        InvalidRecords for a body that does not decompress)."""
        return self._turns.run(deferToThread, rewrite_batch, blob, batch, codec=rewrite.codec, level=rewrite.level,
                               log_append_time=rewrite.log_append_time)
