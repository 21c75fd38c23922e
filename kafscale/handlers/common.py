"""What several handlers share: protocol constants, finding the topic a
request names (by name or by id), and the loop that answers each partition
a request names from the PartitionLog this broker owns."""

import uuid
from dataclasses import dataclass

from twisted.internet.task import deferLater

from kafscale.handlers import authorization
from kafscale.handlers.errors import REFUSALS, STORAGE_ERRORS, kafka_error
from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ApiKey
from kafscale.metadata.acls import Operation, ResourceType

log = logger("kafscale.handlers")

ENTRIES_PER_TURN = 500
"""Topics and partitions a request's answer loop goes through before it
lets other work in: a request naming many is answered in turns rather than
holding the reactor throughout."""

NO_TOPIC_ID = uuid.UUID(int=0)
"""The topic id of a topic named by name, and of an answer without a topic."""

OPERATIONS_NOT_REQUESTED = -(2**31)
"""The authorized-operations field when the client did not ask for it, as
Kafka sends it; kafka-python chokes on -1 (NOTES.md)."""


def endpoint(broker, listener):
    """The host and port fields of an answer naming ``broker`` (a
    BrokerInfo): its address on the listener the request came in on."""
    host, port = broker.address(listener)
    return {"host": host, "port": port}


def known_topic(topics, name, topic_id=NO_TOPIC_ID):
    """The TopicInfo a request's topic entry names: by ``name``, or by
    ``topic_id`` where the name is None (the versions that name topics by
    id). Raises the KafkaError Kafka answers for a topic it does not know:
    UNKNOWN_TOPIC_OR_PARTITION by name, UNKNOWN_TOPIC_ID by id."""
    if name is None:
        info = topics.by_id(topic_id)
        if info is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, f"no topic with id {topic_id}")
        return info
    info = topics.get(name)
    if info is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no topic {name!r}")
    return info


def topic_or_refusal(request, entry, operation):
    """The TopicInfo a request's topic entry names (by its "name", or by its
    "topic_id" in versions without names), or the KafkaError refusing it
    (TOPIC_AUTHORIZATION_FAILED where the principal may not do
    ``operation`` on it): for handlers that answer each of the topic's
    partitions with it."""
    name = entry.get("name")
    try:
        if name is not None:
            authorization.check_topic(request, operation, name)
        info = known_topic(request.topics, name, entry.get("topic_id", NO_TOPIC_ID))
        authorization.check_topic(request, operation, info.name)
        return info
    except KafkaError as e:
        return e


async def known_or_created_topic(request, operation, name, topic_id=NO_TOPIC_ID, may_create=True):
    """:func:`known_topic`, once the request's principal may do
    ``operation`` on it (else TOPIC_AUTHORIZATION_FAILED, whether or not it
    exists), except that a topic named by name that does not exist is
    created with the broker's defaults, where the broker creates topics on
    first use, the request (``may_create``) allows it and the principal may
    create it."""
    if name is not None:
        authorization.check_topic(request, operation, name)
        if name not in request.topics and may_create and request.config.auto_create_topics:
            if not authorization.may_create_topic(request, name):
                raise authorization.refusal(Operation.CREATE, ResourceType.TOPIC, name)
            try:
                return await request.topics.create_automatically(name)
            except REFUSALS as e:
                raise kafka_error(e) from None
    info = known_topic(request.topics, name, topic_id)
    authorization.check_topic(request, operation, info.name)
    return info


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    """How an API spells the topics -> partitions nesting of its request
    and of its answer: the field naming a topic entry's topic (the same in
    both), the field listing its partitions and the field giving a
    partition's index (in the request, then in the answer)."""

    topic: str = "name"
    partitions: str = "partitions"
    index: str = "partition_index"
    answered_partitions: str = "partitions"
    answered_index: str = "partition_index"


async def answer_partitions(request, topics, layout, blank, work, name_of=None, operation=None):
    """Answer each partition that the request's ``topics`` name, in the
    request's order. -> the answer's topic entries.

    A partition's answer starts as ``blank`` with its index and error code
    NONE; ``await work(partition_log, wanted, answer)`` fills it in from the
    PartitionLog this broker owns for it (``wanted`` is the partition's
    request entry). ``name_of(topic)`` gives a topic entry's topic name (by
    default the entry's name field); a KafkaError it raises refuses every
    partition of that topic. A refusal from finding the log or from
    ``work`` (one of :data:`~kafscale.handlers.errors.REFUSALS`) becomes
    the partition's error code, and message where the answer carries one;
    a failing object store is logged too. Where ``operation`` is given, a
    topic the request's principal may not do it on is refused with
    TOPIC_AUTHORIZATION_FAILED. Every ENTRIES_PER_TURN topics and
    partitions it lets other work run.
    """
    answered = []
    entries = 0
    for topic in topics:
        entries += 1
        if entries >= ENTRIES_PER_TURN:
            entries = 0
            await deferLater(request.clock, 0)
        refusal = None
        try:
            name = topic[layout.topic] if name_of is None else name_of(topic)
            if operation is not None:
                authorization.check_topic(request, operation, name)
        except KafkaError as e:
            name, refusal = topic.get(layout.topic), e
        partitions = []
        for wanted in topic[layout.partitions]:
            entries += 1
            if entries >= ENTRIES_PER_TURN:
                entries = 0
                await deferLater(request.clock, 0)
            index = wanted[layout.index]
            answer = {layout.answered_index: index, "error_code": ErrorCode.NONE, **blank}
            partitions.append(answer)
            if refusal is not None:
                _refuse(answer, refusal)
                continue
            try:
                await work(request.logs.log_for(name, index), wanted, answer)
            except REFUSALS as e:
                if isinstance(e, STORAGE_ERRORS):
                    log.warn("{api} of {topic}-{partition} failed: {error}", api=ApiKey(request.api_key).name,
                             topic=name, partition=index, error=e)
                _refuse(answer, kafka_error(e))
        answered.append({layout.topic: name, "topic_id": topic.get("topic_id", NO_TOPIC_ID),
                         layout.answered_partitions: partitions})
    return answered


def _refuse(answer, error):
    answer["error_code"] = error.code
    if "error_message" in answer:
        answer["error_message"] = error.message
