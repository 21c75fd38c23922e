"""twistd plugin support: ``twistd kafscale`` options and service."""

import os
import resource
import sys

from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.components import Componentized

from kafscale import __version__
from kafscale import log
from kafscale.broker import Broker
from kafscale.config import BrokerConfig
from kafscale import stores
from kafscale.etcd.cluster import Cluster
from kafscale.metadata.view import SoleBroker
from kafscale.metrics import BrokerMetrics
from kafscale.metrics.admin import AdminService, Readiness, admin_site
from kafscale.metrics.lag import GroupLag
from kafscale.security.listeners import Listener, ListenerSecurity, parse_listeners
from kafscale.security.principal import SubjectMapping
from kafscale.security.sasl import ALL_MECHANISMS
from kafscale.security.tls import CLIENT_AUTH, ReloadableServerTLS, ReloadOnSIGHUP, TLSFiles, TLSListenerFactory
from kafscale.security.tls import TLSSettingsError
from kafscale.server.protocol import KafkaFactory

_log = log.logger("kafscale.tap")

_DEFAULTS = BrokerConfig()

# File descriptors kept from clients for the object store's connections,
# etcd's, the embedded store's files and the logs.
FILE_DESCRIPTORS_KEPT = 256


def _boolean(text):
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(text)
    return lowered in ("true", "1", "yes")


def _principals(text):
    principals = tuple(p.strip() for p in text.split(";") if p.strip())
    for principal in principals:
        kind, colon, name = principal.partition(":")
        if not (kind and colon and name):
            raise ValueError(principal)
    return principals


def _variable(option):
    return "KAFSCALE_" + option.upper().replace("-", "_")


class Options(usage.Options):
    """Every option falls back to an environment variable named after it
    (``--data-dir`` reads ``KAFSCALE_DATA_DIR``), which is what containers
    want, and then to the default."""

    synopsis = "[options]"
    longdesc = "Run a Kafscale broker: a Kafka-compatible broker on an object store."

    # (long, short, default, help, type); defaults are applied in
    # postOptions, after the environment has had its say.
    settings = [
        ("listen", "l", _DEFAULTS.listen,
         "Twisted endpoint string of the one PLAINTEXT listener, when --listeners is not given.", str),
        ("advertise", "a", None,
         "host:port clients should connect to (default: the listen interface and port), with --listen.", str),
        ("listeners", None, None,
         "Kafka's listeners: NAME://HOST:PORT,... with NAME one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
         " (replaces --listen).", parse_listeners),
        ("advertised-listeners", None, None,
         "What clients are told to connect to, per listener, in the same form (default: the listeners, a"
         " wildcard host as 127.0.0.1).", parse_listeners),
        ("tls-cert", None, None, "PEM certificate (then its intermediates) of SSL and SASL_SSL listeners.", str),
        ("tls-key", None, None, "PEM private key (unencrypted) of --tls-cert.", str),
        ("tls-ca", None, None, "PEM certificates that client certificates must chain to.", str),
        ("tls-client-auth", None, _DEFAULTS.tls_client_auth,
         "Client certificates on TLS listeners: none, requested or required.", str),
        ("tls-principal-mapping-rules", None, _DEFAULTS.tls_principal_mapping_rules,
         "How a client certificate's subject names its principal (Kafka's ssl.principal.mapping.rules).",
         str),
        ("sasl-mechanisms", None, _DEFAULTS.sasl_mechanisms,
         "SASL mechanisms of SASL listeners, among SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN.", str),
        ("failed-authentication-delay-ms", None, _DEFAULTS.failed_authentication_delay_ms,
         "How long a failed authentication waits for its answer (Kafka's"
         " connection.failed.authentication.delay.ms).", int),
        ("inter-broker-listener", None, None,
         "Name of the listener other brokers are reached on, for transaction markers; brokers of a cluster"
         " share listener names (Kafka's inter.broker.listener.name; default: the first listener).", str),
        ("inter-broker-sasl-mechanism", None, _DEFAULTS.inter_broker_sasl_mechanism,
         "SASL mechanism this broker authenticates with on a SASL inter-broker listener: PLAIN,"
         " SCRAM-SHA-256 or SCRAM-SHA-512.", str),
        ("inter-broker-username", None, None, "User this broker authenticates as on a SASL inter-broker listener.",
         str),
        ("inter-broker-password", None, None,
         "Password of --inter-broker-username (better given in the environment).", str),
        ("node-id", None, None,
         "This broker's node id (default: 0 alone, allocated from etcd in a cluster).", int),
        ("rack", None, None, "Rack name reported in Metadata.", str),
        ("data-dir", "d", _DEFAULTS.data_dir, "Directory for the embedded stores.", str),
        ("max-request-size", None, _DEFAULTS.max_request_size,
         "Largest request frame accepted, in bytes (Kafka's socket.request.max.bytes).", int),
        ("max-connections", None, None,
         "Most client connections open at once (default: the file descriptor limit less"
         f" {FILE_DESCRIPTORS_KEPT}, kept for the stores).", int),
        ("max-connections-per-address", None, None,
         "Most client connections open at once from one address (default: no limit of its own).", int),
        ("max-in-flight-requests", None, _DEFAULTS.max_in_flight_requests,
         "Most requests one connection may have under way; past it the connection is not read.", int),
        ("log-level", None, _DEFAULTS.log_level, "debug, info, warn, error or critical.", str),
        ("log-format", None, _DEFAULTS.log_format, "text, or json: one JSON object per line.", str),
        ("admin-listen", None, _DEFAULTS.admin_listen,
         "Twisted endpoint string for the admin HTTP API: /metrics (Prometheus), /healthz, /readyz.", str),
        ("group-lag-interval-ms", None, _DEFAULTS.group_lag_interval_ms,
         "How often consumer group lag is sampled for /metrics.", int),
        ("max-group-series", None, _DEFAULTS.max_group_series,
         "Most per-group series (lag per partition, members) /metrics exports.", int),
        ("cluster-id", None, _DEFAULTS.cluster_id,
         "Cluster id reported to clients; also names the cluster's keys in etcd.", str),
        ("etcd", None, None,
         "Comma-separated etcd endpoints (http://host:2379,...): keep metadata there and join the"
         " cluster of brokers that share it, instead of the embedded store.", str),
        ("etcd-ca", None, None, "PEM certificates etcd's must chain to (https:// endpoints).", str),
        ("etcd-cert", None, None, "PEM client certificate for etcd.", str),
        ("etcd-key", None, None, "PEM private key of --etcd-cert.", str),
        ("etcd-user", None, None, "etcd user (etcd's own authentication).", str),
        ("etcd-password", None, None, "Password of --etcd-user (better given in the environment).", str),
        ("lease-ttl", None, _DEFAULTS.lease_ttl,
         "Seconds a crashed broker keeps its partitions before the others take them over (with --etcd).",
         int),
        ("auto-create-topics", None, _DEFAULTS.auto_create_topics,
         "Create unknown topics on Metadata and Produce (Kafka's auto.create.topics.enable).", _boolean),
        ("num-partitions", None, _DEFAULTS.num_partitions, "Partitions of auto-created topics.", int),
        ("max-partitions-per-topic", None, _DEFAULTS.max_partitions_per_topic,
         "Most partitions a topic may have (more: INVALID_PARTITIONS).", int),
        ("max-partitions", None, _DEFAULTS.max_partitions,
         "Most partitions all topics together may have (more: POLICY_VIOLATION).", int),
        ("s3-bucket", None, None, "Keep segments in this S3 bucket instead of the data directory.", str),
        ("s3-endpoint", None, None, "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3 or AWS's).", str),
        ("s3-region", None, None, "S3 region (default: AWS_REGION or us-east-1).", str),
        ("s3-prefix", None, _DEFAULTS.s3_prefix, "Key prefix for every object in the bucket.", str),
        ("flush-interval-ms", None, _DEFAULTS.flush_interval_ms,
         "0: flush as soon as the previous flush is done (group commit, lowest latency); N: flush every N ms"
         " at most (a window: fewer PUTs for up to N ms more latency).", int),
        ("flush-bytes", None, _DEFAULTS.flush_bytes,
         "Start a flush at once when this many bytes wait, window or not; about the most one object holds.",
         int),
        ("buffer-bytes", None, _DEFAULTS.buffer_bytes,
         "Unflushed bytes (and unsent answers) allowed across all partitions; past it produce requests wait,"
         " their connections unread.", int),
        ("partition-buffer-bytes", None, _DEFAULTS.partition_buffer_bytes,
         "Unflushed bytes allowed per partition; past it produce requests to it wait, their connections unread.",
         int),
        ("fetch-max-bytes", None, _DEFAULTS.fetch_max_bytes,
         "Most bytes one fetch answers, whatever it asks (Kafka's fetch.max.bytes).", int),
        ("fetch-max-wait-ms", None, _DEFAULTS.fetch_max_wait_ms,
         "Longest a fetch waits for data, whatever max_wait_ms it asks.", int),
        ("cache-bytes", None, _DEFAULTS.cache_bytes, "Memory for cached segments.", int),
        ("retention-check-interval-ms", None, _DEFAULTS.retention_check_interval_ms,
         "How often segments past retention.ms / retention.bytes are dropped.", int),
        ("merge-delay-ms", None, _DEFAULTS.merge_delay_ms,
         "How long a flush's segment stays as written before it is merged into larger ones.", int),
        ("merge-check-interval-ms", None, _DEFAULTS.merge_check_interval_ms,
         "How often the owned partitions are looked at for segments to merge.", int),
        ("merge-delete-delay-ms", None, _DEFAULTS.merge_delete_delay_ms,
         "How long the objects a merge replaced stay, for the readers still reading them.", int),
        ("merge-bytes-per-second", None, _DEFAULTS.merge_bytes_per_second,
         "Bytes per second merging may read and write again.", int),
        ("gc-interval-ms", None, _DEFAULTS.gc_interval_ms,
         "How often the controller deletes the shared flush objects no partition names any more.", int),
        ("gc-grace-ms", None, _DEFAULTS.gc_grace_ms,
         "How old such an object must be before it is deleted (longer than any flush's upload and commit).",
         int),
        ("group-initial-rebalance-delay-ms", None, _DEFAULTS.group_initial_rebalance_delay_ms,
         "How long the first rebalance of an empty group waits for more members.", int),
        ("group-min-session-timeout-ms", None, _DEFAULTS.group_min_session_timeout_ms,
         "Shortest session timeout a group member may ask for.", int),
        ("group-max-session-timeout-ms", None, _DEFAULTS.group_max_session_timeout_ms,
         "Longest session timeout a group member may ask for.", int),
        ("offset-metadata-max-bytes", None, _DEFAULTS.offset_metadata_max_bytes,
         "Largest metadata string stored with a committed offset.", int),
        ("transactions", None, _DEFAULTS.transactions,
         "Serve transactions (false: transactional producers are refused at once).", _boolean),
        ("transaction-max-timeout-ms", None, _DEFAULTS.transaction_max_timeout_ms,
         "Longest transaction timeout a producer may ask for (Kafka's transaction.max.timeout.ms).", int),
        ("transaction-check-interval-ms", None, _DEFAULTS.transaction_check_interval_ms,
         "How often transactions past their timeout, or left unfinished by a crash, are looked for.", int),
        ("transactional-id-expiration-ms", None, _DEFAULTS.transactional_id_expiration_ms,
         "How long a transactional id with no transaction under way is kept after its last change"
         " (Kafka's transactional.id.expiration.ms; 7 days).", int),
        ("authorizer", None, None,
         "none: every client may do everything; acl: enforce the ACLs kept in the metadata store"
         " (Kafka's StandardAuthorizer). Default: acl with --super-users or --allow-everyone-if-no-acl-found,"
         " else none.", str),
        ("super-users", None, _DEFAULTS.super_users,
         "Principals allowed everything, separated by ';' (\"User:admin;User:ops\"; Kafka's super.users).",
         _principals),
        ("allow-everyone-if-no-acl-found", None, None,
         "true: allow an operation on a resource that no ACL covers; false: deny it"
         f" (Kafka's allow.everyone.if.no.acl.found; default {_DEFAULTS.allow_everyone_if_no_acl_found}).",
         _boolean),
        ("quota-window-num", None, _DEFAULTS.quota_window_num,
         "Windows over which client quotas' rates are measured (Kafka's quota.window.num).", int),
        ("quota-window-size-seconds", None, _DEFAULTS.quota_window_size_seconds,
         "Length of one of those windows (Kafka's quota.window.size.seconds).", int),
    ]
    optParameters = [
        [name, short, None, f"{text} [env {_variable(name)}, default {default}]"]
        for name, short, default, text, _ in settings
    ]

    def opt_version(self):
        print(f"kafscale {__version__}")
        raise SystemExit(0)

    def postOptions(self):
        for name, _, default, _, kind in self.settings:
            value = self[name]
            if value is None:
                value = os.environ.get(_variable(name))
            if value is None:
                self[name] = default
                continue
            try:
                self[name] = kind(value)
            except ValueError:
                raise usage.UsageError(f"{value!r} is not valid for --{name}") from None
        if self["log-level"] not in ("debug", "info", "warn", "error", "critical"):
            raise usage.UsageError(f"unknown log level {self['log-level']!r}")
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError(f"unknown log format {self['log-format']!r}: text or json")
        for name in ("group-lag-interval-ms", "max-group-series"):
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        if self["max-request-size"] < 1024:
            raise usage.UsageError("--max-request-size must be at least 1024")
        for name in ("num-partitions", "max-partitions-per-topic", "max-partitions", "max-in-flight-requests"):
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        if self["flush-bytes"] < 1:
            raise usage.UsageError("--flush-bytes must be at least 1")
        for name in ("fetch-max-bytes", "fetch-max-wait-ms", "flush-interval-ms", "buffer-bytes",
                     "partition-buffer-bytes", "cache-bytes", "group-initial-rebalance-delay-ms",
                     "offset-metadata-max-bytes"):
            if self[name] < 0:
                raise usage.UsageError(f"--{name} cannot be negative")
        for name in ("retention-check-interval-ms", "merge-check-interval-ms", "merge-bytes-per-second",
                     "gc-interval-ms", "quota-window-num", "quota-window-size-seconds"):
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        for name in ("merge-delay-ms", "merge-delete-delay-ms", "gc-grace-ms"):
            if self[name] < 0:
                raise usage.UsageError(f"--{name} cannot be negative")
        if not 0 < self["group-min-session-timeout-ms"] <= self["group-max-session-timeout-ms"]:
            raise usage.UsageError("group session timeouts: 0 < min <= max")
        for name in ("max-connections", "max-connections-per-address"):
            if self[name] is not None and self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        if self["lease-ttl"] < 1:
            raise usage.UsageError("--lease-ttl must be at least 1")
        acl_settings = bool(self["super-users"]) or self["allow-everyone-if-no-acl-found"] is not None
        if self["authorizer"] is None:
            self["authorizer"] = "acl" if acl_settings else _DEFAULTS.authorizer
        if self["authorizer"] not in ("none", "acl"):
            raise usage.UsageError(f"--authorizer is none or acl, not {self['authorizer']!r}")
        if self["authorizer"] != "acl" and acl_settings:
            raise usage.UsageError("--super-users and --allow-everyone-if-no-acl-found need --authorizer acl")
        if self["allow-everyone-if-no-acl-found"] is None:
            self["allow-everyone-if-no-acl-found"] = _DEFAULTS.allow_everyone_if_no_acl_found
        if self["node-id"] is None and not self["etcd"]:
            self["node-id"] = _DEFAULTS.node_id
        self._check_security()
        advertised = self["advertised-listeners"]
        if self["listeners"] is None:
            self["listeners"] = ()
            if advertised is None:
                host, port = _advertised_address(self["listen"], self["advertise"])
                advertised = (Listener("PLAINTEXT", host, port),)
            names = {"PLAINTEXT"}
        else:
            if advertised is None:
                advertised = tuple(Listener(listener.name, _reachable(listener.host), listener.port)
                                   for listener in self["listeners"])
            names = {listener.name for listener in self["listeners"]}
        unknown = [listener.name for listener in advertised if listener.name not in names]
        if unknown:
            raise usage.UsageError(f"--advertised-listeners names listeners that do not exist: {unknown}")
        self["advertised-listeners"] = advertised
        self._check_inter_broker(names, advertised)
        self["advertised-host"], self["advertised-port"] = advertised[0].host, advertised[0].port

    def _check_security(self):
        listeners = self["listeners"] or ()
        if any(listener.tls for listener in listeners) and not (self["tls-cert"] and self["tls-key"]):
            raise usage.UsageError("SSL and SASL_SSL listeners need --tls-cert and --tls-key")
        if self["tls-client-auth"] not in CLIENT_AUTH:
            raise usage.UsageError(f"--tls-client-auth is one of {', '.join(CLIENT_AUTH)}")
        try:
            SubjectMapping(self["tls-principal-mapping-rules"])
        except ValueError as e:
            raise usage.UsageError(f"--tls-principal-mapping-rules: {e}") from None
        mechanisms = [m.strip().upper() for m in self["sasl-mechanisms"].split(",") if m.strip()]
        if not mechanisms or any(m not in ALL_MECHANISMS for m in mechanisms):
            raise usage.UsageError(f"--sasl-mechanisms: some of {', '.join(ALL_MECHANISMS)}")
        self["sasl-mechanisms"] = ",".join(mechanisms)
        if self["failed-authentication-delay-ms"] < 0:
            raise usage.UsageError("--failed-authentication-delay-ms cannot be negative")
        if bool(self["etcd-cert"]) != bool(self["etcd-key"]):
            raise usage.UsageError("--etcd-cert and --etcd-key go together")
        if self["etcd-user"] and self["etcd-password"] is None:
            raise usage.UsageError("--etcd-user needs --etcd-password (or KAFSCALE_ETCD_PASSWORD)")

    def _check_inter_broker(self, names, advertised):
        name = self["inter-broker-listener"]
        if name is None:
            self["inter-broker-listener"] = name = advertised[0].name
        name = self["inter-broker-listener"] = name.upper()
        if name not in names:
            raise usage.UsageError(f"--inter-broker-listener {name} is not one of this broker's listeners")
        mechanism = self["inter-broker-sasl-mechanism"] = self["inter-broker-sasl-mechanism"].strip().upper()
        if mechanism not in ALL_MECHANISMS:
            raise usage.UsageError(f"--inter-broker-sasl-mechanism is one of {', '.join(ALL_MECHANISMS)}")
        if bool(self["inter-broker-username"]) != (self["inter-broker-password"] is not None):
            raise usage.UsageError("--inter-broker-username and --inter-broker-password go together")

    def config(self):
        """The BrokerConfig these options describe: each option is the field
        of the same name (dashes for underscores)."""
        fields = {name.replace("-", "_"): self[name] for name, *_ in self.settings if name != "advertise"}
        return BrokerConfig(advertised_host=self["advertised-host"], advertised_port=self["advertised-port"],
                            **fields)


def _reachable(host):
    """A listener's host as clients may be told it: a wildcard becomes the
    loopback address."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _advertised_address(listen, advertise):
    """Clients must be told a reachable host:port; without --advertise, use
    what the tcp listen endpoint names."""
    if advertise:
        host, _, port = advertise.rpartition(":")
        if not host or not port.isdigit():
            raise usage.UsageError(f"--advertise wants host:port, not {advertise!r}")
        return host, int(port)
    kind, _, rest = listen.partition(":")
    parts = rest.split(":")
    if kind not in ("tcp", "tcp6") or not parts[0].isdigit():
        raise usage.UsageError("--advertise is required unless --listen is a tcp:PORT endpoint")
    interface = next((p[len("interface="):] for p in parts[1:] if p.startswith("interface=")), "")
    if interface in ("", "0.0.0.0", "::"):
        interface = "127.0.0.1" if kind == "tcp" else "::1"
    return interface, int(parts[0])


def connection_limit(config):
    """--max-connections, or as many as the file descriptor limit allows
    while keeping FILE_DESCRIPTORS_KEPT for the stores."""
    if config.max_connections is not None:
        return config.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(soft - FILE_DESCRIPTORS_KEPT, 1)


def object_store(config, requests=None):
    return stores.object_store(data_dir=config.data_dir, s3_bucket=config.s3_bucket, s3_endpoint=config.s3_endpoint,
                               s3_region=config.s3_region, s3_prefix=config.s3_prefix, requests=requests)


def metadata_store(config, requests=None):
    if not config.etcd:
        os.makedirs(config.data_dir, exist_ok=True)
    # The broker reacts to changes of topics, ACLs, client quotas and
    # dynamic broker configs; it follows brokers and owners through its
    # Cluster's own watches.
    return stores.metadata_store(data_dir=config.data_dir, etcd=config.etcd, cluster_id=config.cluster_id,
                                 lease_ttl=config.lease_ttl, watched={"topics", "acls", "quotas", "broker_configs"},
                                 etcd_security=stores.EtcdSecurity(
                                     config.etcd_ca, config.etcd_cert, config.etcd_key, config.etcd_user,
                                     config.etcd_password), requests=requests)


def cluster_view(config, metadata):
    """The IClusterView of this broker: a Cluster of the brokers sharing its
    etcd, or a SoleBroker alone on its embedded store."""
    listeners = tuple((listener.name, listener.host, listener.port) for listener in config.advertised_listeners)
    if not config.etcd:
        return SoleBroker(metadata, config.node_id, config.advertised_host, config.advertised_port, config.rack,
                          listeners=listeners)
    return Cluster(metadata, config.advertised_host, config.advertised_port, config.rack, node_id=config.node_id,
                   listeners=listeners)


class InOrder(MultiService):
    """A MultiService that stops its children one at a time, in the reverse
    of the order they were added, each once the one added after it has
    stopped: what is added first (a store) outlives what uses it."""

    def stopService(self):
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self):
        for service in reversed(list(self)):
            await maybeDeferred(service.stopService)


class JSONLogging(InOrder):
    """An InOrder that makes twistd log as JSON lines (``--log-format
    json``) to standard output: twistd asks the application it adds this
    service to for an ILogObserver before it starts logging."""

    def setServiceParent(self, parent):
        super().setServiceParent(parent)
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, log.JSONLines(sys.stdout))


class ObjectStoreService(Service):
    """Closes an object store (its connections and threads) when the
    service tree stops."""

    def __init__(self, objects):
        self.objects = objects

    def stopService(self):
        super().stopService()
        return self.objects.close()


class ListenWhenReady(Service):
    """Listen for clients, on each (endpoint, KafkaFactory) of
    ``listeners``, only once the broker has loaded its state, and stop
    listening first on shutdown. A factory may be wrapped (in TLS, say):
    ``listeners`` holds (endpoint, the factory listened with, the
    KafkaFactory)."""

    def __init__(self, listeners, broker):
        self.listeners = listeners
        self.broker = broker
        self._ports = []
        self.listening = None

    @property
    def accepting(self):
        """Whether clients can connect now, on every listener."""
        return len(self._ports) == len(self.listeners)

    def startService(self):
        super().startService()
        self.listening = Deferred.fromCoroutine(self._listen())

    async def _listen(self):
        await self.broker.when_ready()
        for endpoint, factory, _ in self.listeners:
            try:
                self._ports.append(await endpoint.listen(factory))
            except Exception:
                _log.failure("cannot listen on {endpoint}", endpoint=endpoint)
                self.broker.reactor.stop()
                return

    def stopService(self):
        super().stopService()
        for _, _, factory in self.listeners:
            factory.disconnect_all()
        ports, self._ports = self._ports, []
        return gatherResults([port.stopListening() for port in ports])


def makeService(options):
    config = options.config()
    log.set_level(config.log_level)
    metrics = BrokerMetrics(max_group_series=config.max_group_series)
    try:
        objects = object_store(config, metrics.object_store)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    # Started in this order, stopped in the reverse: the broker flushes and
    # hands over its partitions while the stores and its view still run.
    service = InOrder() if config.log_format == "text" else JSONLogging()
    try:
        metadata = metadata_store(config, metrics.metadata)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    metadata.setName("metadata")
    metadata.setServiceParent(service)
    ObjectStoreService(objects).setServiceParent(service)
    # Up before the broker starts and after it stops: probes see both.
    from twisted.internet import reactor

    admin = AdminService(endpoints.serverFromString(reactor, config.admin_listen))
    admin.setServiceParent(service)
    view = cluster_view(config, metadata)
    view.setName("view")
    view.setServiceParent(service)
    try:
        broker = Broker(config, metadata, objects, view, flush_observer=metrics.flushes)
    except TLSSettingsError as e:
        raise usage.UsageError(f"inter-broker TLS: {e}") from None
    broker.setName("broker")
    broker.setServiceParent(service)
    listener = ListenWhenReady(_listeners(config, broker, metadata, service, metrics.answered), broker)
    listener.setName("listener")
    listener.setServiceParent(service)
    lag = GroupLag(metadata, view, broker.logs, config.group_lag_interval_ms / 1000,
                   max_series=config.max_group_series, clock=broker.reactor)
    lag.setServiceParent(service)
    metrics.watch(broker, [factory for _, _, factory in listener.listeners], lag)
    admin.site = admin_site(metrics.registry, Readiness(broker, [listener], metadata))
    return service


def _listeners(config, broker, metadata, service, requests):
    """-> (endpoint, factory listened with, KafkaFactory) for each listener
    ``config`` names; TLS listeners share one certificate, reloaded on
    SIGHUP by a child of ``service``; ``requests`` hears of every request
    answered."""
    if not config.listeners:
        return [(endpoints.serverFromString(broker.reactor, config.listen),)
                + (_factory(config, broker, requests),) * 2]
    tls = None
    if any(listener.tls for listener in config.listeners):
        try:
            tls = ReloadableServerTLS(TLSFiles(config.tls_cert, config.tls_key, config.tls_ca, config.tls_client_auth))
        except TLSSettingsError as e:
            raise usage.UsageError(str(e)) from None
        ReloadOnSIGHUP(tls, broker.reactor).setServiceParent(service)
    mapping = SubjectMapping(config.tls_principal_mapping_rules)
    mechanisms = tuple(config.sasl_mechanisms.split(","))
    # Each listener counts its own connections against the limits.
    made = []
    for listener in config.listeners:
        security = ListenerSecurity(
            listener.name, sasl_mechanisms=mechanisms if listener.sasl else (), credentials=metadata,
            subject_mapping=mapping if listener.tls and config.tls_client_auth != "none" else None)
        factory = _factory(config, broker, requests, security)
        host = listener.host.replace(":", "\\:")
        endpoint = endpoints.serverFromString(
            broker.reactor, f"tcp:{listener.port}" + (f":interface={host}" if host else ""))
        made.append((endpoint, TLSListenerFactory(tls, False, factory) if listener.tls else factory, factory))
    return made


def _factory(config, broker, requests, security=ListenerSecurity()):
    return KafkaFactory(broker, config.max_request_size, max_connections=connection_limit(config),
                        max_connections_per_address=config.max_connections_per_address, security=security,
                        max_in_flight=config.max_in_flight_requests, requests=requests)
