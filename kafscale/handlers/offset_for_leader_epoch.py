"""OffsetForLeaderEpoch, v2-4: where each leader epoch of a partition
ended, from the epoch history kept with the partition's committed state.
Consumers ask it after a leader change to check that what they read was not
truncated (it never is here: every owner starts where its predecessor's
commits ended).

Versions: v2 adds the current leader epoch, checked for fencing (v0-1 are
not spoken); v3 adds the replica id, which we ignore since there are no
followers; v4 is the first flexible version.

Departures from Kafka: the current epoch ends at the high watermark, since
an owner's log holds nothing uncommitted that a follower could have read.
"""

from kafscale.handlers.common import PartitionLayout, answer_partitions
from kafscale.metadata.acls import Operation

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


def epoch_end(history, current_epoch, log_end, requested):
    """(epoch, end offset) for ``requested`` as Kafka answers it: the
    largest epoch at or below the requested one, and the start of the first
    epoch above it (the log end for the current epoch). An epoch before the
    earliest known is answered with the earliest start; one above the
    current epoch is undefined. ``history`` is (epoch, start offset) pairs,
    oldest first."""
    if requested == UNDEFINED_EPOCH or requested > current_epoch:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if requested == current_epoch:
        return current_epoch, log_end
    # The current epoch always has an entry: its claim wrote it.
    later = next((epoch, start) for epoch, start in history if epoch > requested)
    earlier = [epoch for epoch, _ in history if epoch <= requested]
    return (earlier[-1] if earlier else requested), later[1]


LAYOUT = PartitionLayout(topic="topic", index="partition", answered_index="partition")


async def handle(request):
    blank = {"leader_epoch": UNDEFINED_EPOCH, "end_offset": UNDEFINED_OFFSET}
    topics = await answer_partitions(request, request.body["topics"], LAYOUT, blank, _answer,
                                     operation=Operation.DESCRIBE)
    return {"throttle_time_ms": 0, "topics": topics}


async def _answer(partition_log, wanted, answer):
    partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
    state = partition_log.state
    answer["leader_epoch"], answer["end_offset"] = epoch_end(
        state.epoch_history, state.leader_epoch, state.next_offset, wanted["leader_epoch"])
