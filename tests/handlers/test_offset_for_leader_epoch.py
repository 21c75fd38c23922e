"""OffsetForLeaderEpoch: Kafka's answers from the epoch history, and every
version on the wire against a broker whose partition has had two owners."""

import tempfile

from twisted.trial import unittest

from kafscale.handlers.offset_for_leader_epoch import epoch_end
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.tap import Options, makeService
from tests.support.brokers import free_port, in_thread
from tests.support.clients import produce
from tests.support.wire import Connection


class EpochEndTests(unittest.SynchronousTestCase):
    # Epoch 1 wrote 0-9, epoch 2 nothing (no entry), epoch 3 wrote 10-14,
    # epoch 4 is current and wrote 15-19.
    history = ((1, 0), (3, 10), (4, 15))

    def end(self, requested):
        return epoch_end(self.history, 4, 20, requested)

    def test_current_epoch_ends_at_the_log_end(self):
        self.assertEqual(self.end(4), (4, 20))

    def test_past_epoch_ends_where_the_next_began(self):
        self.assertEqual(self.end(1), (1, 10))
        self.assertEqual(self.end(3), (3, 15))

    def test_epoch_that_wrote_nothing_is_answered_by_the_one_before(self):
        self.assertEqual(self.end(2), (1, 10))

    def test_epoch_before_the_earliest_known(self):
        self.assertEqual(epoch_end(((5, 100), (6, 120)), 6, 130, 2), (2, 100))

    def test_future_and_undefined_epochs(self):
        self.assertEqual(self.end(5), (-1, -1))
        self.assertEqual(self.end(-1), (-1, -1))


class OffsetForLeaderEpochTests(unittest.TestCase):
    async def start(self, data_dir):
        port = free_port()
        options = Options()
        options.parseOptions(["--listen", f"tcp:{port}:interface=127.0.0.1", "--data-dir", data_dir])
        service = makeService(options)
        service.startService()
        await service.getServiceNamed("listener").listening
        return service, f"127.0.0.1:{port}"

    async def test_every_version_after_a_change_of_owner(self):
        # A single broker claims its partitions anew (a new epoch) at every
        # start: two starts give the partition two epochs.
        data_dir = tempfile.mkdtemp(prefix="kafscale-test-")
        first, bootstrap = await self.start(data_dir)
        await in_thread(produce, bootstrap, "epochs", [(None, b"a%d" % i, None, 0) for i in range(5)])
        await first.stopService()
        second, bootstrap = await self.start(data_dir)
        self.addCleanup(second.stopService)
        await in_thread(produce, bootstrap, "epochs", [(None, b"b%d" % i, None, 0) for i in range(3)])

        def ask(version, partitions):
            connection = Connection(bootstrap)
            try:
                body = {"replica_id": -1, "topics": [{"topic": "epochs", "partitions": [
                    {"partition": p, "current_leader_epoch": current, "leader_epoch": epoch}
                    for p, current, epoch in partitions]}]}
                reply = connection.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, version, body)
            finally:
                connection.close()
            return [(p["error_code"], p["leader_epoch"], p["end_offset"]) for p in reply["topics"][0]["partitions"]]

        for version in (2, 3, 4):
            answers = await in_thread(ask, version, [
                (0, -1, 1), (0, 2, 2), (0, -1, 3), (0, 1, 1), (0, 3, 1), (1, -1, 1),
            ])
            self.assertEqual(answers, [
                (ErrorCode.NONE, 1, 5),
                (ErrorCode.NONE, 2, 8),
                (ErrorCode.NONE, -1, -1),
                (ErrorCode.FENCED_LEADER_EPOCH, -1, -1),
                (ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1),
                (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            ], f"version {version}")
