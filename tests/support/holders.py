"""A PartitionLog's holder for tests of the log alone."""

from zope.interface import implementer

from kafscale.storage.interfaces import IPartitionHolder


@implementer(IPartitionHolder)
class RecordingHolder:
    """Lets appends go on while ``holding`` is true, and records the logs
    that were deposed."""

    def __init__(self):
        self.holding = True
        self.deposed_logs = []

    def may_append(self, topic, partition):
        return self.holding

    def deposed(self, partition_log):
        self.deposed_logs.append(partition_log)
