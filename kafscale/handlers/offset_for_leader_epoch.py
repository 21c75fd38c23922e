"""OffsetForLeaderEpoch: where each leader epoch of a partition ended, from
the epoch history kept with the partition's committed state. Consumers ask
it after a leader change to check that what they read was not truncated
(it never is here: every owner starts where its predecessor's commits
ended)."""

from kafscale.handlers import handles
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey

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


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def offset_for_leader_epoch(request):
    broker = request.broker
    topics = []
    for topic in request.body["topics"]:
        partitions = []
        for wanted in topic["partitions"]:
            answer = {"error_code": ErrorCode.NONE, "partition": wanted["partition"],
                      "leader_epoch": UNDEFINED_EPOCH, "end_offset": UNDEFINED_OFFSET}
            try:
                partition_log = broker.log_for(topic["topic"], wanted["partition"])
                partition_log.check_leader_epoch(wanted.get("current_leader_epoch", -1))
            except KafkaError as e:
                answer["error_code"] = e.code
            else:
                state = partition_log.state
                answer["leader_epoch"], answer["end_offset"] = epoch_end(
                    state.epoch_history, state.leader_epoch, state.next_offset, wanted["leader_epoch"])
            partitions.append(answer)
        topics.append({"topic": topic["topic"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
