"""``kafscale-admin transactions``: transactional ids' stored state, and
aborting a transaction that hangs.

An abort stores the decision (PrepareAbort, at the next producer epoch so
that the producer that left the transaction is fenced); the broker that
coordinates the transactional id writes the markers within its
--transaction-check-interval-ms and stores the outcome.
"""

import time

import click

from kafscale.coordinator.transactions import ONGOING, PREPARE_ABORT
from kafscale.metadata.interfaces import TransactionConflict
from kafscale_admin.output import Column, console, emit, emit_json, number, output_option, table
from kafscale_admin.stores import AdminError, completing


async def transactional_ids(stores):
    return sorted(await stores.metadata.transactions())


def _summary(transactional_id, state, now_ms):
    started = state["started_ms"]
    return {"transactional_id": transactional_id, "state": state["state"], "producer_id": state["producer_id"],
            "producer_epoch": state["producer_epoch"], "timeout_ms": state["timeout_ms"],
            "partitions": len(state["partitions"]),
            "age_ms": now_ms - started if state["state"] == ONGOING and started >= 0 else None}


@click.group()
def transactions():
    """List, describe and abort transactions."""


@transactions.command("list")
@output_option
@click.pass_obj
def list_transactions(admin, output):
    """List every transactional id with its last transaction's state."""

    async def work(stores):
        return await stores.metadata.transactions()

    now_ms = int(time.time() * 1000)
    found = [_summary(tid, state, now_ms) for tid, (state, _) in sorted(admin.run(work).items())]
    emit(output, found, [Column("transactional_id", "transactional id"), Column("state"),
                         number("producer_id", "producer id"), number("producer_epoch", "epoch"),
                         number("partitions"), number("age_ms", "age ms"), number("timeout_ms", "timeout ms")],
         empty="no transactions")


@transactions.command()
@click.argument("transactional_id", shell_complete=completing(transactional_ids))
@output_option
@click.pass_obj
def describe(admin, transactional_id, output):
    """Show TRANSACTIONAL_ID's transaction: its state, producer, partitions
    and the groups whose offsets it carries."""

    async def work(stores):
        return await stores.metadata.load_transaction(transactional_id)

    loaded = admin.run(work)
    if loaded is None:
        raise AdminError(f"no transactional id {transactional_id!r}")
    state, _ = loaded
    summary = _summary(transactional_id, state, int(time.time() * 1000))
    partitions = [{"topic": topic, "partition": partition} for topic, partition in state["partitions"]]
    if output == "json":
        emit_json({**summary, "partitions": partitions, "groups": state["groups"]})
        return
    console().print(table(partitions, [Column("topic"), number("partition")],
                          title=f"transaction {transactional_id}: {summary['state']}, producer"
                                f" {summary['producer_id']} epoch {summary['producer_epoch']},"
                                f" groups {', '.join(state['groups']) or '-'}"))


@transactions.command()
@click.argument("transactional_id", shell_complete=completing(transactional_ids))
@click.pass_obj
def abort(admin, transactional_id):
    """Abort TRANSACTIONAL_ID's ongoing transaction and fence its producer;
    its coordinator writes the ABORT markers."""

    async def work(stores):
        loaded = await stores.metadata.load_transaction(transactional_id)
        if loaded is None:
            raise AdminError(f"no transactional id {transactional_id!r}")
        state, version = loaded
        if state["state"] != ONGOING:
            raise AdminError(f"transaction {transactional_id!r} is {state['state']}, not {ONGOING}")
        decided = {**state, "state": PREPARE_ABORT, "last_epoch": state["producer_epoch"],
                   "producer_epoch": state["producer_epoch"] + 1}
        try:
            await stores.metadata.save_transaction(transactional_id, decided, version)
        except TransactionConflict:
            raise AdminError(f"transaction {transactional_id!r} changed meanwhile: try again") from None

    admin.run(work)
    click.echo(f"transaction {transactional_id} aborting: its coordinator writes the markers")
