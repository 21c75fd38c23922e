"""The dispatch table: which handler answers each API key, and at which
versions. ApiVersions advertises exactly this table, and the server refuses
what it does not list."""

from dataclasses import dataclass
from typing import Awaitable, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from kafscale.config import BrokerConfig
from kafscale.coordinator.coordinator import GroupCoordinator
from kafscale.coordinator.transactions import TransactionCoordinator

from kafscale.handlers import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    alter_client_quotas,
    alter_configs,
    alter_user_scram_credentials,
    api_versions,
    create_acls,
    create_partitions,
    create_topics,
    delete_acls,
    delete_groups,
    delete_records,
    delete_topics,
    describe_acls,
    describe_client_quotas,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_producers,
    describe_transactions,
    describe_user_scram_credentials,
    end_txn,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    list_transactions,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sasl_authenticate,
    sasl_handshake,
    sync_group,
    txn_offset_commit,
    write_txn_markers,
)
from kafscale.broker_configs import DynamicBrokerConfigs
from kafscale.metadata.interfaces import IAclStore, IClientQuotaStore, IScramCredentialStore
from kafscale.metadata.view import IClusterView
from kafscale.partition_logs import PartitionLogs
from kafscale.protocol.messages import ApiKey
from kafscale.rewriter import BatchRewriter
from kafscale.security.authorizer import ALLOW_EVERYONE, IAuthorizer
from kafscale.security.principal import ANONYMOUS
from kafscale.security.sasl import SaslAuthentication
from kafscale.topics import Topics


@dataclass(slots=True)
class Request:
    """One decoded request, with the parts of the broker a handler may use,
    and who sent it: the connection's client address and the principal it
    authenticated as (``User:NAME``; ANONYMOUS without authentication), the
    name of the listener it came in on, and the connection's SASL state
    (None on listeners without SASL)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: dict
    client_host: str
    topics: Topics
    logs: PartitionLogs
    view: IClusterView
    groups: GroupCoordinator
    config: BrokerConfig
    clock: IReactorTime
    rewriter: BatchRewriter
    principal: str = ANONYMOUS
    listener: str = "PLAINTEXT"
    authentication: SaslAuthentication | None = None
    credentials: IScramCredentialStore | None = None
    # Called with a Deferred: the connection reads and dispatches nothing
    # more until it fires (a produce waiting for room in full buffers).
    hold_reading: Callable[[Deferred], None] = lambda until: None
    # Takes nothing more from the client, and closes its connection once
    # the requests under way are answered.
    close_when_answered: Callable[[], None] = lambda: None
    transactions: TransactionCoordinator | None = None
    authorizer: IAuthorizer = ALLOW_EVERYONE
    acl_store: IAclStore | None = None
    quota_store: IClientQuotaStore | None = None
    broker_configs: DynamicBrokerConfigs | None = None


@dataclass(frozen=True, slots=True)
class Handler:
    api_key: int
    min_version: int
    max_version: int
    handle: Callable[[Request], Awaitable[dict | None]]
    # How many bytes the answer to a request body may take, for APIs whose
    # answers can be large: the connection holds back further requests
    # while the answers under way may exceed its bound.
    answer_bytes: Callable[[dict], int] | None = None
    # Whether to cancel the handler when its connection closes: true for
    # long polls that only read; false where cancelling midway would leave
    # a change half made.
    cancel_on_close: bool = False


HANDLERS: dict[int, Handler] = {
    handler.api_key: handler
    for handler in (
        Handler(ApiKey.PRODUCE, 3, 13, produce.handle),
        Handler(ApiKey.FETCH, 4, 18, fetch.handle, answer_bytes=fetch.answer_bytes, cancel_on_close=True),
        Handler(ApiKey.LIST_OFFSETS, 1, 11, list_offsets.handle),
        Handler(ApiKey.METADATA, 0, 13, metadata.handle),
        Handler(ApiKey.OFFSET_COMMIT, 2, 10, offset_commit.handle),
        Handler(ApiKey.OFFSET_FETCH, 1, 10, offset_fetch.handle),
        Handler(ApiKey.FIND_COORDINATOR, 0, 6, find_coordinator.handle),
        Handler(ApiKey.JOIN_GROUP, 0, 9, join_group.handle),
        Handler(ApiKey.HEARTBEAT, 0, 4, heartbeat.handle),
        Handler(ApiKey.LEAVE_GROUP, 0, 5, leave_group.handle),
        Handler(ApiKey.SYNC_GROUP, 0, 5, sync_group.handle),
        Handler(ApiKey.DESCRIBE_GROUPS, 0, 6, describe_groups.handle),
        Handler(ApiKey.LIST_GROUPS, 0, 5, list_groups.handle),
        Handler(ApiKey.CREATE_TOPICS, 2, 7, create_topics.handle),
        Handler(ApiKey.DELETE_TOPICS, 1, 6, delete_topics.handle),
        Handler(ApiKey.DELETE_RECORDS, 0, 2, delete_records.handle),
        Handler(ApiKey.INIT_PRODUCER_ID, 0, 6, init_producer_id.handle),
        Handler(ApiKey.OFFSET_FOR_LEADER_EPOCH, 2, 4, offset_for_leader_epoch.handle),
        Handler(ApiKey.DESCRIBE_ACLS, 1, 3, describe_acls.handle),
        Handler(ApiKey.CREATE_ACLS, 1, 3, create_acls.handle),
        Handler(ApiKey.DELETE_ACLS, 1, 3, delete_acls.handle),
        Handler(ApiKey.DESCRIBE_CONFIGS, 1, 4, describe_configs.handle),
        Handler(ApiKey.ALTER_CONFIGS, 0, 2, alter_configs.handle),
        Handler(ApiKey.CREATE_PARTITIONS, 0, 3, create_partitions.handle),
        Handler(ApiKey.DELETE_GROUPS, 0, 2, delete_groups.handle),
        Handler(ApiKey.OFFSET_DELETE, 0, 0, offset_delete.handle),
        Handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1, incremental_alter_configs.handle),
        Handler(ApiKey.DESCRIBE_CLIENT_QUOTAS, 0, 1, describe_client_quotas.handle),
        Handler(ApiKey.ALTER_CLIENT_QUOTAS, 0, 1, alter_client_quotas.handle),
        Handler(ApiKey.DESCRIBE_CLUSTER, 0, 2, describe_cluster.handle),
        Handler(ApiKey.SASL_HANDSHAKE, 0, 1, sasl_handshake.handle),
        Handler(ApiKey.SASL_AUTHENTICATE, 0, 2, sasl_authenticate.handle, cancel_on_close=True),
        Handler(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0, describe_user_scram_credentials.handle),
        Handler(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, 0, alter_user_scram_credentials.handle),
    )
}
# ApiVersions answers from the table it belongs to.
HANDLERS[ApiKey.API_VERSIONS] = Handler(ApiKey.API_VERSIONS, 0, 4, api_versions.answering_from(HANDLERS))

TRANSACTION_HANDLERS: dict[int, Handler] = {
    handler.api_key: handler
    for handler in (
        Handler(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 5, add_partitions_to_txn.handle),
        Handler(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4, add_offsets_to_txn.handle),
        Handler(ApiKey.END_TXN, 0, 4, end_txn.handle),
        Handler(ApiKey.WRITE_TXN_MARKERS, 1, 1, write_txn_markers.handle),
        Handler(ApiKey.TXN_OFFSET_COMMIT, 0, 5, txn_offset_commit.handle),
        Handler(ApiKey.DESCRIBE_PRODUCERS, 0, 0, describe_producers.handle),
        Handler(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0, describe_transactions.handle),
        Handler(ApiKey.LIST_TRANSACTIONS, 0, 1, list_transactions.handle),
    )
}
"""The transaction APIs, served unless a broker is run without transactions
(BrokerConfig.transactions)."""

_WITH_TRANSACTIONS: dict[int, Handler] = {}


def handlers_for(config):
    """The dispatch table of a broker with ``config`` (None: the plain one)."""
    if config is None or not config.transactions:
        return HANDLERS
    if not _WITH_TRANSACTIONS:
        _WITH_TRANSACTIONS.update(HANDLERS)
        _WITH_TRANSACTIONS.update(TRANSACTION_HANDLERS)
        _WITH_TRANSACTIONS[ApiKey.API_VERSIONS] = Handler(ApiKey.API_VERSIONS, 0, 4,
                                                          api_versions.answering_from(_WITH_TRANSACTIONS))
    return _WITH_TRANSACTIONS


def unsupported_version_response(correlation_id, handlers=HANDLERS):
    """The encoded answer to an ApiVersions request at a version not in the
    table (see :func:`api_versions.unsupported_version_response`)."""
    return api_versions.unsupported_version_response(handlers, correlation_id)
