"""What the etcd cluster view asks of its metadata store beyond
`IMetadataStore`: owner keys and broker registrations under the store's
session lease."""

from zope.interface import Attribute

from kafscale.metadata.interfaces import IMetadataStore


class IOwnershipStore(IMetadataStore):
    """A metadata store whose session lease holds broker registrations and
    owner keys, so they vanish when the process dies.

    Methods return Deferreds, as `IMetadataStore`'s do; etcd's failures come
    as MetadataErrors (MetadataUnavailable the retriable one).
    """

    client = Attribute("The running EtcdClient, for reading and watching the ownership keys.")
    keys = Attribute("The store's kafscale.etcd.layout.Keys.")
    lease_ttl = Attribute("The session lease's TTL in seconds.")
    current_session = Attribute("The session's LeaseKeeper, or None while there is none.")

    def session():
        """-> the session's LeaseKeeper, granted now if there is none yet or
        the last one was lost (its registrations are then made again)."""

    def register_broker(info, exclusive=False):
        """As `IMetadataStore.register_broker`, under the session lease. With
        ``exclusive``, raises NodeIdInUse rather than replace another lease's
        registration."""

    def deregister_broker(node_id):
        """Withdraw a registration this store made. -> None."""

    def acquire_partition(topic, partition, node_id):
        """Claim a partition (a new leader epoch, whatever the current one)
        for broker ``node_id`` and write its owner key under the session
        lease, in one transaction, only if no other lease holds the owner
        key. -> an Acquired. Raises OwnedElsewhere, UnknownTopic."""

    def release_partition(topic, partition):
        """Delete the partition's owner key if the session lease holds it.
        -> None."""

    def take_slot(slot, node_id, revision):
        """Write coordinator slot ``slot``'s owner key for broker ``node_id``
        under the session lease, if the key's mod revision is still
        ``revision`` (0: absent). -> the OwnerKeyWrite, or None when the key
        changed meanwhile or there is no live session."""

    def release_slot(slot):
        """Delete the slot's owner key if the session lease holds it. -> None."""
