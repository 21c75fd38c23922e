"""The broker's settings, gathered from twistd options in one place."""

from dataclasses import dataclass

from kafscale.security.listeners import Listener


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    listen: str = "tcp:9092:interface=127.0.0.1"
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 9092
    # Kafka's listeners (empty: the one PLAINTEXT listener ``listen`` names)
    # and advertised.listeners (the first is advertised_host:advertised_port)
    listeners: tuple[Listener, ...] = ()
    advertised_listeners: tuple[Listener, ...] = (Listener("PLAINTEXT", "127.0.0.1", 9092),)
    # TLS on SSL and SASL_SSL listeners: PEM files, client certificates
    # (none, requested or required) and how their subjects name principals
    # (Kafka's ssl.principal.mapping.rules)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_client_auth: str = "none"
    tls_principal_mapping_rules: str = "DEFAULT"
    # SASL on SASL_PLAINTEXT and SASL_SSL listeners, and how long a failed
    # authentication waits for its answer (Kafka's
    # connection.failed.authentication.delay.ms)
    sasl_mechanisms: str = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    failed_authentication_delay_ms: int = 100
    # The listener other brokers are reached on (Kafka's
    # inter.broker.listener.name; None: the first), and the SASL this
    # broker authenticates with there (Kafka's
    # sasl.mechanism.inter.broker.protocol and its JAAS credentials)
    inter_broker_listener: str | None = None
    inter_broker_sasl_mechanism: str = "SCRAM-SHA-512"
    inter_broker_username: str | None = None
    inter_broker_password: str | None = None
    # None in a cluster: allocated from etcd at start
    node_id: int | None = 0
    rack: str | None = None
    data_dir: str = "kafscale-data"
    # Kafka's socket.request.max.bytes
    max_request_size: int = 104857600
    # Client connections, in all (None: as many as leave file descriptors
    # for the stores) and from one address (None: no limit of its own);
    # Kafka's max.connections and max.connections.per.ip
    max_connections: int | None = None
    max_connections_per_address: int | None = None
    # Requests one connection may have under way at once; past it the
    # connection is not read (the client's own in-flight limit and TCP hold
    # the rest). Kafka reads one at a time, but its answers do not wait for
    # a flush; here a pipelining producer needs many under way per flush.
    max_in_flight_requests: int = 1000
    log_level: str = "info"
    cluster_id: str = "kafscale"
    # Cluster mode: etcd endpoints (comma-separated URLs), and how long a
    # crashed broker's registration and partitions outlive it, in seconds
    etcd: str | None = None
    lease_ttl: int = 10
    # etcd over TLS (a CA to check its certificate, a client certificate
    # and key) and etcd's own users
    etcd_ca: str | None = None
    etcd_cert: str | None = None
    etcd_key: str | None = None
    etcd_user: str | None = None
    etcd_password: str | None = None
    # Kafka's auto.create.topics.enable and num.partitions
    auto_create_topics: bool = True
    num_partitions: int = 1
    # The most partitions a topic, and all topics together, may have
    max_partitions_per_topic: int = 10000
    max_partitions: int = 100000
    # Object store: a bucket name selects S3, else a directory under data_dir
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_prefix: str = ""
    # When a flush starts: 0 is group commit (as soon as the previous flush
    # is done); else a window of this many ms, for fewer PUTs. A flush also
    # starts once flush_bytes wait, and carries about that much at most.
    flush_interval_ms: int = 0
    flush_bytes: int = 8 << 20
    # Unflushed bytes allowed per partition and per broker (answers not yet
    # sent count too); past them a produce request waits, its connection
    # unread, until flushes make room
    partition_buffer_bytes: int = 64 << 20
    buffer_bytes: int = 512 << 20
    # The most one fetch answers and the longest it waits, whatever it asks
    # (Kafka's fetch.max.bytes; a parked fetch holds memory and its
    # connection's answers)
    fetch_max_bytes: int = 55 << 20
    fetch_max_wait_ms: int = 30000
    # Recent and recently read segments kept in memory
    cache_bytes: int = 512 << 20
    # How often the partition owner drops segments past retention
    # (Kafka's log.retention.check.interval.ms)
    retention_check_interval_ms: int = 5000
    # Background merging of small segments (kafscale.storage.merge): how
    # long an entry stays as written, how often partitions are looked at,
    # how long replaced objects stay for readers, and the pace
    merge_delay_ms: int = 30000
    merge_check_interval_ms: int = 5000
    merge_delete_delay_ms: int = 60000
    merge_bytes_per_second: int = 32 << 20
    # Collecting multi-partition objects no manifest names any more
    # (kafscale.storage.gc): how often, and how old such an object must be
    gc_interval_ms: int = 300000
    gc_grace_ms: int = 600000
    # Consumer groups, with Kafka's defaults: group.initial.rebalance.delay.ms,
    # group.min.session.timeout.ms, group.max.session.timeout.ms and
    # offset.metadata.max.bytes
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    offset_metadata_max_bytes: int = 4096
    # The admin HTTP API (/metrics, /healthz, /readyz): Redpanda's admin port
    admin_listen: str = "tcp:9644:interface=127.0.0.1"
    # text (twistd's) or json (one object per line)
    log_format: str = "text"
    # How often consumer group lag is sampled for /metrics, and the most
    # per-group series (lag, members) exported
    group_lag_interval_ms: int = 10000
    max_group_series: int = 1000
    # Transactions (kafscale.coordinator.transactions): whether they are
    # served (off: the transaction APIs are not advertised and transactional
    # producers are refused at once); the longest timeout a producer may ask
    # for (Kafka's transaction.max.timeout.ms), how often expired and
    # unfinished transactions are looked for, and how long an idle
    # transactional id is kept (Kafka's transactional.id.expiration.ms).
    transactions: bool = True
    transaction_max_timeout_ms: int = 900000
    transaction_check_interval_ms: int = 10000
    transactional_id_expiration_ms: int = 604800000
    # Authorization: "none" (everyone may do everything) or "acl" (Kafka's
    # ACLs, kept in the metadata store); Kafka's super.users and
    # allow.everyone.if.no.acl.found
    authorizer: str = "none"
    super_users: tuple[str, ...] = ()
    allow_everyone_if_no_acl_found: bool = False
    # Client quotas' rates are measured over this many windows of this many
    # seconds (Kafka's quota.window.num and quota.window.size.seconds)
    quota_window_num: int = 11
    quota_window_size_seconds: int = 1
