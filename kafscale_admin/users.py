"""``kafscale-admin users``: SCRAM credentials, written straight into the
metadata store, so the first user exists before any broker runs."""

import sys

import click
from twisted.internet.threads import deferToThread

from kafscale.security.scram import MAX_ITERATIONS, MECHANISMS, MIN_ITERATIONS, credential_from_password
from kafscale_admin.output import Column, emit, number, output_option
from kafscale_admin.stores import AdminError


@click.group()
def users():
    """Users and their SCRAM credentials (for SASL PLAIN and SCRAM)."""


@users.command("set")
@click.argument("name")
@click.option("--mechanism", "mechanisms", type=click.Choice(sorted(MECHANISMS)), multiple=True,
              help="SCRAM mechanism to store a credential for (repeat for both; default: both).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--iterations", type=click.IntRange(MIN_ITERATIONS, MAX_ITERATIONS), default=MIN_ITERATIONS,
              help="Iterations of the salted password.")
@click.pass_obj
def set_user(admin, name, mechanisms, password_stdin, iterations):
    """Create the user NAME or change its password. The password is read
    from standard input (--password-stdin) or asked for; only a salted,
    iterated credential is stored."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise AdminError("empty password")
    if not name:
        raise AdminError("empty user name")

    async def work(stores):
        for mechanism in mechanisms or sorted(MECHANISMS):
            credential = await deferToThread(credential_from_password, mechanism, password, iterations)
            await stores.metadata.set_scram_credential(name, credential)

    admin.run(work, create=True)


@users.command("list")
@output_option
@click.pass_obj
def list_users(admin, output):
    """List the users and their SCRAM mechanisms."""

    async def work(stores):
        return await stores.metadata.scram_credentials()

    rows = [{"user": name, "mechanism": mechanism, "iterations": credential.iterations}
            for name, credentials in sorted(admin.run(work).items())
            for mechanism, credential in sorted(credentials.items())]
    emit(output, rows, [Column("user"), Column("mechanism"), number("iterations")], empty="no users")


@users.command("delete")
@click.argument("name")
@click.option("--mechanism", "mechanisms", type=click.Choice(sorted(MECHANISMS)), multiple=True,
              help="Delete only this mechanism's credential (default: all of the user's).")
@click.pass_obj
def delete_user(admin, name, mechanisms):
    """Delete the user NAME's credentials."""

    async def work(stores):
        deleted = False
        for mechanism in mechanisms or sorted(MECHANISMS):
            deleted = await stores.metadata.delete_scram_credential(name, mechanism) or deleted
        return deleted

    if not admin.run(work):
        raise AdminError(f"no such user: {name}")
