"""``kafscale-admin quotas``: client quotas (produce and fetch byte rates,
request rate) per user and/or client id, written straight into the metadata
store; brokers follow the change within a second."""

import click

from kafscale.security.quotas import CLIENT_ID, KEYS, USER, InvalidQuota, checked_entity, checked_value
from kafscale_admin.output import Column, emit, output_option, say
from kafscale_admin.stores import AdminError

COLUMNS = [Column("user"), Column("client_id", "client id"), Column("quotas")]


@click.group()
def quotas():
    """Set, list and remove client quotas."""


def _entity_options(command):
    for option in reversed([
        click.option("--user", help="The user (as authenticated: alice for User:alice)."),
        click.option("--default-user", is_flag=True, help="Every user without a quota of its own."),
        click.option("--client-id", help="The client id."),
        click.option("--default-client", is_flag=True, help="Every client id without a quota of its own."),
    ]):
        command = option(command)
    return command


def _entity(user, default_user, client_id, default_client):
    pairs = []
    if user is not None or default_user:
        pairs.append((USER, user))
    if client_id is not None or default_client:
        pairs.append((CLIENT_ID, client_id))
    try:
        return checked_entity(pairs)
    except InvalidQuota as e:
        raise click.UsageError(f"{e}: --user, --default-user, --client-id or --default-client") from None


def _row(entity, values):
    named = dict(entity)

    def shown(kind):
        if kind not in named:
            return None
        return "<default>" if named[kind] is None else named[kind]

    return {"user": shown(USER), "client_id": shown(CLIENT_ID), "quotas": dict(sorted(values.items()))}


@quotas.command("set")
@_entity_options
@click.option("--producer-byte-rate", type=float, help="Bytes per second produced.")
@click.option("--consumer-byte-rate", type=float, help="Bytes per second fetched.")
@click.option("--request-rate", type=float, help="Requests per second.")
@click.pass_obj
def set_quotas(admin, user, default_user, client_id, default_client, producer_byte_rate, consumer_byte_rate,
               request_rate):
    """Set quotas of a user, a client id, or both."""
    entity = _entity(user, default_user, client_id, default_client)
    given = dict(zip(KEYS, (producer_byte_rate, consumer_byte_rate, request_rate)))
    try:
        changes = {key: checked_value(key, value) for key, value in given.items() if value is not None}
    except InvalidQuota as e:
        raise AdminError(str(e)) from None
    if not changes:
        raise click.UsageError("set at least one of --producer-byte-rate, --consumer-byte-rate, --request-rate")

    async def work(stores):
        await stores.metadata.alter_client_quotas([(entity, changes)])

    admin.run(work)
    say("set")


@quotas.command("list")
@output_option
@click.pass_obj
def list_quotas(admin, output):
    """List every client quota."""

    async def work(stores):
        return [_row(entity, values) for entity, values in
                sorted((await stores.metadata.client_quotas()).items(), key=lambda item: repr(item[0]))]

    emit(output, admin.run(work), COLUMNS, empty="no quotas")


@quotas.command()
@_entity_options
@click.option("--key", "keys", multiple=True, type=click.Choice(KEYS), help="Remove only this quota (default: all).")
@click.pass_obj
def remove(admin, user, default_user, client_id, default_client, keys):
    """Remove quotas of a user, a client id, or both."""
    entity = _entity(user, default_user, client_id, default_client)

    async def work(stores):
        await stores.metadata.alter_client_quotas([(entity, {key: None for key in keys or KEYS})])

    admin.run(work)
    say("removed")
