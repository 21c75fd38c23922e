"""What a partition log refuses or fails with, named after what happened.
The handlers translate these into Kafka error codes
(:mod:`kafscale.handlers.errors`); nothing here knows the wire."""


class PartitionError(Exception):
    """A partition log refused a request or could not carry it out; the
    message says why."""


class NotOwner(PartitionError):
    """This broker does not own the partition: it let it go, another owner
    claimed it, or its hold on it is in doubt."""


class StaleLeaderEpoch(PartitionError):
    """The request names a leader epoch older than the partition's."""


class NewerLeaderEpoch(PartitionError):
    """The request names a leader epoch newer than the partition's: this
    broker has not caught up with a change of owner yet."""


class OffsetOutOfRange(PartitionError):
    """The offset lies outside the log (below its start or past its end)."""


class InvalidBatch(PartitionError):
    """A batch breaks a rule of the log: an idempotent producer's batch
    sent with others, or with a negative epoch or sequence."""


class StaleProducerEpoch(PartitionError):
    """An idempotent producer wrote with an epoch older than its latest."""


class OutOfOrderSequence(PartitionError):
    """An idempotent producer's batch does not follow its last one."""


class StorageUnavailable(PartitionError):
    """The object store failed to store or read a segment; nothing was
    committed."""


class CommitFailed(PartitionError):
    """The metadata store could not record a change of the partition (a
    commit, or a new log start); it may be retried."""


class LogStartContended(PartitionError):
    """Moving the log start kept losing the race with the partition's own
    commits; it may be retried."""


class TransactionNotVerified(PartitionError):
    """A transactional batch for a producer that has no verified ongoing
    transaction holding this partition (KIP-890): written, it could hang
    the partition's last stable offset or join the wrong transaction."""
