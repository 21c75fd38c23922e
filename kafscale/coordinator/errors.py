"""What the group coordinator refuses or fails with, named after what
happened. The handlers translate these into Kafka error codes
(:mod:`kafscale.handlers.errors`); nothing here knows the wire."""


class GroupError(Exception):
    """A group request was refused; the message, if any, says why."""


class CoordinatorUnavailable(GroupError):
    """No broker can coordinate the group now: it is changing hands, being
    removed, or the metadata store cannot be reached."""


class NotCoordinator(GroupError):
    """Another broker coordinates the group."""


class InvalidGroupId(GroupError):
    """The group id is empty where a group is needed."""


class InvalidSessionTimeout(GroupError):
    """The session timeout lies outside the broker's bounds."""


class InconsistentProtocol(GroupError):
    """The member's protocol type or protocols do not match the group's."""


class MemberIdRequired(GroupError):
    """A new member must join again with the member id it is given here."""

    def __init__(self, member_id):
        super().__init__(f"join again as {member_id}")
        self.member_id = member_id


class UnknownMember(GroupError):
    """The member id is not (or no longer) one of the group's members."""


class IllegalGeneration(GroupError):
    """The request names another generation than the group's."""


class RebalanceInProgress(GroupError):
    """The group is rebalancing: the member must join again."""


class FencedInstance(GroupError):
    """A static member's group instance id now belongs to a newer member id."""


class GroupNotFound(GroupError):
    """The group has neither members nor committed offsets."""


class GroupNotEmpty(GroupError):
    """The group still has members."""


class ConcurrentTransactions(GroupError):
    """The transactional id's previous transaction is still being completed:
    retry shortly."""


class ProducerFenced(GroupError):
    """A newer producer with the same transactional id (a higher epoch) has
    taken over: this one is a zombie."""


class InvalidProducerIdMapping(GroupError):
    """The producer id is not the transactional id's current one."""


class InvalidTxnState(GroupError):
    """The request does not fit the transaction's state (say, a commit of a
    transaction that was aborted)."""


class InvalidTransactionTimeout(GroupError):
    """The transaction timeout lies outside the broker's bounds."""


class SubscribedToTopic(GroupError):
    """The group's members consume the topic: its offsets stay."""
