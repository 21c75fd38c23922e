"""Exactly once on a cluster of real broker processes (etcd, moto): a
transactional processor copies an input topic to an output topic, with its
consumer group's offsets in its transactions, while the brokers it depends
on are killed with SIGKILL in turn (the transaction coordinator's, an
output partition's owner, the group coordinator's), each restarted before
the next. A read_committed consumer of the output then sees every input
record exactly once and nothing of an aborted transaction, and the group's
committed offsets are the input's ends."""

import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from twisted.internet.defer import gatherResults
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import BrokerProcess, in_thread, s3_args
from tests.support.clients import produce
from tests.support.etcd_server import etcd_cluster
from tests.support.groups import find
from tests.support.topics import create_topic
from tests.support.transactions import TRANSACTIONS, confluent_values
from tests.support.waiting import eventually
from tests.support.wire import Connection

LEASE_TTL = 2
PARTITIONS = 3
RECORDS = 600
GROUP = "copier"
TRANSACTIONAL_ID = "copier-1"


class Copier:
    """Copies ``input`` to ``output`` in transactions of up to 20 records,
    committing the group's offsets in each, from a thread: the classic
    exactly-once copier, with the input's partitions assigned to it rather
    than subscribed (a group of one). Each session resumes at the group's
    committed offsets with a new producer, which fences the previous one
    and aborts its open transaction. On any error a new session starts.

    A session that makes no progress for ``STALL`` seconds is left behind
    and a new one started, as an application's watchdog would: when the
    group coordinator's broker drops out of Metadata, librdkafka (2.16) can
    hold send_offsets_to_transaction() past its timeout until it next looks
    for the coordinator, a minute or more later
    (confluentinc/librdkafka#5511)."""

    STALL = 20

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.copied = 0  # records in committed transactions
        self.restarts = 0
        self.stopping = False
        self.progressed = time.monotonic()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(60)

    def _run(self):
        while not self.stopping:
            left_behind = threading.Event()
            session = threading.Thread(target=self._session, args=(left_behind,), daemon=True)
            self.progressed = time.monotonic()
            session.start()
            while session.is_alive() and not self.stopping:
                if time.monotonic() - self.progressed > self.STALL:
                    left_behind.set()
                    self.restarts += 1
                    break
                session.join(0.2)
        session.join(60)

    def _session(self, left_behind):
        consumer = producer = None
        try:
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP,
                                 "enable.auto.commit": False, "isolation.level": "read_committed"})
            producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": TRANSACTIONAL_ID,
                                 "linger.ms": 5, "transaction.timeout.ms": 10000})
            producer.init_transactions(30)
            committed = consumer.committed([TopicPartition("input", p) for p in range(PARTITIONS)], 30)
            consumer.assign([TopicPartition("input", tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                             for tp in committed])
            while not (self.stopping or left_behind.is_set()):
                self.progressed = time.monotonic()
                messages = [m for m in consumer.consume(20, 0.5) if not m.error()]
                if not messages:
                    continue
                producer.begin_transaction()
                positions = {}
                for message in messages:
                    producer.produce("output", value=message.value(), partition=message.partition())
                    positions[message.partition()] = message.offset() + 1
                producer.send_offsets_to_transaction([TopicPartition("input", p, o) for p, o in positions.items()],
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
                with self.lock:
                    self.copied += len(messages)
        except KafkaException:
            if not left_behind.is_set():
                self.restarts += 1
        finally:
            if consumer is not None:
                consumer.close()
            del producer


def coordinators(brokers, timeout=30):
    """(the copier's transaction coordinator, its group coordinator), as
    the first broker names them once both slots have a live owner."""
    deadline = time.monotonic() + timeout
    while True:
        connection = Connection(brokers[0].bootstrap)
        try:
            [(_, error, _, _, port)] = find(connection, 4, [TRANSACTIONAL_ID], key_type=1)
            [(_, group_error, _, _, group_port)] = find(connection, 4, [GROUP])
        finally:
            connection.close()
        named = [b for b in brokers if b.port == port], [b for b in brokers if b.port == group_port]
        if error == group_error == ErrorCode.NONE and all(named):
            return named[0][0], named[1][0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no coordinators within {timeout} s: {error}, {group_error}")
        time.sleep(0.2)


def committed_offsets(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition("input", p) for p in range(PARTITIONS)], 20)]
    finally:
        consumer.close()


class ExactlyOnceTests(unittest.TestCase):
    timeout = 400

    async def setUp(self):
        cluster = etcd_cluster()
        bucket_args = await s3_args(self)
        self.args = (*cluster, "--lease-ttl", str(LEASE_TTL),
                     *TRANSACTIONS, *bucket_args)
        # Fixed node ids, as a StatefulSet gives: a restarted broker comes
        # back as itself. (librdkafka's transactional producer stalled past
        # its API timeouts when a known address came back under a new id.)
        self.brokers = [BrokerProcess(*self.args, "--node-id", str(node_id)) for node_id in (1, 2, 3)]
        for broker in self.brokers:
            self.addCleanup(in_thread, broker.stop)
        await gatherResults([in_thread(broker.start, 60) for broker in self.brokers])
        self.bootstrap = ",".join(b.bootstrap for b in self.brokers)

    async def kill_and_restart(self, victim, copier):
        before = copier.copied
        await in_thread(victim.kill)
        restarted = BrokerProcess(*victim.args, port=victim.port)
        self.addCleanup(in_thread, restarted.stop)
        self.brokers[self.brokers.index(victim)] = restarted
        await in_thread(restarted.start, 60)
        # The copier gets on with the work before the next kill.
        await eventually(lambda: copier.copied >= before + 60, timeout=90, what="progress after a kill")

    async def test_copy_exactly_once_while_brokers_are_killed(self):
        await create_topic(self.brokers[0].bootstrap, "input", PARTITIONS)
        await create_topic(self.brokers[0].bootstrap, "output", PARTITIONS)
        values = [b"%d" % n for n in range(RECORDS)]
        await in_thread(produce, self.bootstrap, "input",
                        [(None, value, None, n % PARTITIONS) for n, value in enumerate(values)],
                        **{"enable.idempotence": True})
        copier = Copier(self.bootstrap)
        copier.start()
        self.addCleanup(in_thread, copier.stop)
        await eventually(lambda: copier.copied >= 40, timeout=60, what="the copier's first transactions")

        coordinator, _ = await in_thread(coordinators, self.brokers)
        await self.kill_and_restart(coordinator, copier)
        owner = [b for b in self.brokers if b is not coordinator][0]
        await self.kill_and_restart(owner, copier)
        _, group_coordinator = await in_thread(coordinators, self.brokers)
        await self.kill_and_restart(group_coordinator, copier)

        # A commit whose answer was lost is not counted by the copier: the
        # group's offsets say when everything is copied.
        async def all_copied():
            try:
                return sum(await in_thread(committed_offsets, self.bootstrap)) >= RECORDS
            except KafkaException:  # the group coordinator is still moving
                return False

        await eventually(all_copied, timeout=90, interval=1.0, what="every record copied")
        offsets = await in_thread(committed_offsets, self.bootstrap)
        self.assertEqual(offsets, [RECORDS // PARTITIONS] * PARTITIONS)
        output = await in_thread(confluent_values, self.bootstrap, "output", PARTITIONS, "read_committed", RECORDS)
        self.assertEqual(sorted(output), sorted(values))
        self.assertEqual(len(output), len(set(output)))
