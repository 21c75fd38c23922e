"""The broker: its parts, and their lifetimes."""

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater

from kafscale.broker_configs import DynamicBrokerConfigs
from kafscale.coordinator.broker_client import BrokerClient, InterBrokerSecurity
from kafscale.coordinator.coordinator import GroupCoordinator
from kafscale.coordinator.markers import MarkerWriter
from kafscale.coordinator.transactions import TransactionCoordinator
from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataUnavailable
from kafscale.partition_logs import PartitionLogs
from kafscale.reconciler import Reconciler
from kafscale.rewriter import BatchRewriter
from kafscale.security.authorizer import AclAuthorizer, AllowEveryone
from kafscale.security.listeners import Listener
from kafscale.security.quotas import ClientQuotas, QuotaSettings
from kafscale.security.tls import ClientTLS
from kafscale.storage.cache import SegmentCache
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.gc import CollectorSettings, SharedObjectCollector
from kafscale.storage.merge import MergeService, MergeSettings
from kafscale.storage.partition_log import BufferBudget
from kafscale.storage.retention import RetentionService
from kafscale.topics import Topics

log = logger("kafscale.broker")


def inter_broker_security(config):
    """-> the InterBrokerSecurity of connections to other brokers: the
    security protocol of the inter-broker listener (its name), TLS trusting
    --tls-ca and presenting this broker's own certificate (for mTLS
    listeners), SASL with the inter-broker credentials. Raises
    TLSSettingsError for unreadable files."""
    listener = Listener(config.inter_broker_listener or config.advertised_listeners[0].name, "", 0)
    tls = ClientTLS(config.tls_ca, config.tls_cert, config.tls_key) if listener.tls else None
    if not listener.sasl:
        return InterBrokerSecurity(tls)
    if not config.inter_broker_username:
        # Starting anyway keeps a single broker, or one whose transactions
        # stay on it, working as before.
        log.warn("no --inter-broker-username for the {name} inter-broker listener: transactions with partitions"
                 " on other brokers will not finish", name=listener.name)
        return InterBrokerSecurity(tls)
    return InterBrokerSecurity(tls, config.inter_broker_sasl_mechanism, config.inter_broker_username,
                               config.inter_broker_password)


class Broker(MultiService):
    """Starts a broker's parts in order and stops them in the reverse.

    Its parts: ``topics`` (Topics), ``logs`` (the PartitionLogs it serves),
    the reconciliation that keeps those in line with ``view`` (its
    IClusterView), ``rewriter`` (the BatchRewriter that stamps and
    recompresses produced batches as their topics ask), and the services
    under it: retention, merging, collecting unneeded shared objects and
    ``groups`` (the GroupCoordinator), and ``authorizer`` (an IAuthorizer),
    which follows the ACLs in ``metadata``, and ``quotas`` (ClientQuotas),
    which follows the client quotas, and ``broker_configs``
    (DynamicBrokerConfigs), which follows the dynamic broker configs.
    ``flush_observer`` (an
    IFlushObserver, if any) hears what each flush cost. The stores and the view are started before the broker
    and stopped after it by the service tree they share (see kafscale.tap).

    Starting, it loads the topics and joins the view (retrying while the
    store cannot be reached), then takes its partitions; `when_ready` fires
    then. Stopping, it leaves the view first, so that each partition's
    successor takes it the moment it is released, then flushes and hands
    over every partition.
    """

    def __init__(self, config, metadata, objects, view, reactor=None, flush_observer=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.metadata = metadata
        self.objects = objects
        self.view = view
        self.cache = SegmentCache(config.cache_bytes)
        self.topics = Topics(metadata, objects, self.cache, config.num_partitions,
                             max_partitions_per_topic=config.max_partitions_per_topic,
                             max_partitions=config.max_partitions)
        # Stopped after the partitions' hand-over (a child stops after the
        # broker's own stopService work), so their last flushes go through it.
        self.flusher = Flusher(node_id=view.node_id, objects=objects, metadata=metadata, reactor=reactor,
                               settings=FlushSettings(config.flush_interval_ms, config.flush_bytes),
                               observer=flush_observer)
        self.flusher.setServiceParent(self)
        # Produced batches until committed, and answers until sent.
        self.budget = BufferBudget(config.buffer_bytes)
        self.logs = PartitionLogs(self.topics, view, metadata=metadata, objects=objects, cache=self.cache,
                                  budget=self.budget, flusher=self.flusher, config=config, reactor=reactor)
        self._reconciler = Reconciler(self.topics, self.logs, view)
        self.broker_configs = DynamicBrokerConfigs(metadata, view)
        self.broker_configs.setServiceParent(self)
        RetentionService(self.logs, self.topics, config.retention_check_interval_ms / 1000, clock=reactor,
                         with_defaults=self.broker_configs.over_defaults).setServiceParent(self)
        MergeService(self.logs, MergeSettings(
            delay_ms=config.merge_delay_ms, check_interval_ms=config.merge_check_interval_ms,
            delete_delay_ms=config.merge_delete_delay_ms, bytes_per_second=config.merge_bytes_per_second,
        ), clock=reactor).setServiceParent(self)
        SharedObjectCollector(objects, metadata, view, CollectorSettings(
            interval_ms=config.gc_interval_ms, grace_ms=config.gc_grace_ms,
        ), clock=reactor).setServiceParent(self)
        self.rewriter = BatchRewriter()
        self.groups = GroupCoordinator(metadata, view, config, reactor)
        self.groups.setServiceParent(self)
        self.transactions = None
        self._broker_client = None
        if config.transactions:
            self._broker_client = BrokerClient(reactor, security=inter_broker_security(config))
            markers = MarkerWriter(self.logs, self.topics, view, self._broker_client,
                                   listener=config.inter_broker_listener)
            self.transactions = TransactionCoordinator(
                metadata, view, markers, reactor, max_timeout_ms=config.transaction_max_timeout_ms,
                check_interval_ms=config.transaction_check_interval_ms,
                expiration_ms=config.transactional_id_expiration_ms)
            self.transactions.setServiceParent(self)
        if config.authorizer == "acl":
            self.authorizer = AclAuthorizer(metadata, config.super_users, config.allow_everyone_if_no_acl_found)
            self.authorizer.setServiceParent(self)
            # ACL changes go through it, so that it sees them at once.
            self.acl_store = self.authorizer
        else:
            self.authorizer = AllowEveryone()
            self.acl_store = metadata
        self.quotas = ClientQuotas(metadata, QuotaSettings(config.quota_window_num, config.quota_window_size_seconds),
                                   clock=reactor)
        self.quotas.setServiceParent(self)
        self._joined = False
        self._ready = False
        self._opening = None
        self._ready_waiters = []

    def startService(self):
        super().startService()
        self._opening = Deferred.fromCoroutine(self._open())
        self._opening.addErrback(self._open_failed)

    def _open_failed(self, failure):
        if not failure.check(CancelledError):
            log.failure("broker failed to start", failure)

    @property
    def ready(self):
        """Whether the broker has loaded its state and taken its partitions."""
        return self._ready

    def when_ready(self):
        """A Deferred that fires once the broker has loaded its state and
        taken its partitions."""
        waiter = Deferred()
        if self._ready:
            waiter.callback(self)
        else:
            self._ready_waiters.append(waiter)
        return waiter

    async def _open(self):
        delay = 0.1
        while not self._joined:
            try:
                # The topics first: once joined, others hand partitions over.
                await self.topics.load()
                if self.authorizer.enforcing:
                    await self.authorizer.load()
                await self.quotas.load()
                await self.broker_configs.load()
                await self.view.join()
                # A cluster gives the node id on joining; objects are named by it.
                self.flusher.node_id = self.view.node_id
                self._joined = True
            except MetadataUnavailable as error:
                log.warn("cannot reach the metadata store yet: {error}", error=error)
                await deferLater(self.reactor, delay)
                delay = min(2 * delay, 2.0)
        await self._reconciler.start()
        log.info("broker {node} ready: {topics} topics, {logs} partitions owned",
                 node=self.view.node_id, topics=len(self.topics), logs=len(self.logs))
        self._ready = True
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(self)

    def stopService(self):
        return Deferred.fromCoroutine(self._close())

    async def _close(self):
        # A broker stopped while still starting (waiting for etcd, say) must
        # not go on to join and take partitions after it has stopped.
        if self._opening is not None:
            self._opening.cancel()
        await self.topics.stop()
        await self._reconciler.stop()
        if self._joined:
            await self.view.leave()
        await self._reconciler.hand_over_all()
        await super().stopService()
        if self._broker_client is not None:
            self._broker_client.close()
