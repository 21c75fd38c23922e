"""``kafscale-admin``: manage a Kafscale cluster through its metadata store
and bucket directly, with or without a broker running."""

import click
from click.shell_completion import get_completion_class

from kafscale import __version__
from kafscale_admin.acls import acls
from kafscale_admin.cluster import brokers, cluster
from kafscale_admin.groups import groups
from kafscale_admin.quotas import quotas
from kafscale_admin.segments import segments
from kafscale_admin.stores import Admin, Location, react_runner
from kafscale_admin.top import top
from kafscale_admin.topics import topics
from kafscale_admin.transactions import transactions
from kafscale_admin.users import users

PROG_NAME = "kafscale-admin"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name=PROG_NAME)
@click.option("-d", "--data-dir", envvar="KAFSCALE_DATA_DIR", show_envvar=True, default="kafscale-data",
              type=click.Path(file_okay=False), help="The embedded stores of a single broker (its --data-dir).")
@click.option("--etcd", envvar="KAFSCALE_ETCD", show_envvar=True, metavar="URLS",
              help="Comma-separated etcd endpoints of a cluster, instead of the embedded metadata store.")
@click.option("--cluster-id", envvar="KAFSCALE_CLUSTER_ID", show_envvar=True, default="kafscale",
              help="The cluster's name in etcd (the brokers' --cluster-id).")
@click.option("--etcd-ca", envvar="KAFSCALE_ETCD_CA", show_envvar=True, type=click.Path(dir_okay=False),
              help="PEM certificates etcd's must chain to (https:// endpoints).")
@click.option("--etcd-cert", envvar="KAFSCALE_ETCD_CERT", show_envvar=True, type=click.Path(dir_okay=False),
              help="PEM client certificate for etcd.")
@click.option("--etcd-key", envvar="KAFSCALE_ETCD_KEY", show_envvar=True, type=click.Path(dir_okay=False),
              help="PEM private key of --etcd-cert.")
@click.option("--etcd-user", envvar="KAFSCALE_ETCD_USER", show_envvar=True, help="etcd user.")
@click.option("--etcd-password", envvar="KAFSCALE_ETCD_PASSWORD", show_envvar=True,
              help="Password of --etcd-user (better given in the environment).")
@click.option("--s3-bucket", envvar="KAFSCALE_S3_BUCKET", show_envvar=True,
              help="The cluster's bucket, instead of the objects under --data-dir.")
@click.option("--s3-endpoint", envvar="KAFSCALE_S3_ENDPOINT", show_envvar=True,
              help="S3 endpoint URL (default: AWS_ENDPOINT_URL_S3 or AWS's).")
@click.option("--s3-region", envvar="KAFSCALE_S3_REGION", show_envvar=True,
              help="S3 region (default: AWS_REGION or us-east-1).")
@click.option("--s3-prefix", envvar="KAFSCALE_S3_PREFIX", show_envvar=True, default="",
              help="Key prefix of every object in the bucket.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0,
              help="Seconds to wait for the metadata store.")
@click.pass_context
def main(ctx, **options):
    """Manage Kafscale topics, consumer groups, segments, users, ACLs and client quotas.

    Credentials for S3 come from the standard AWS chain (environment, shared
    files, container and instance roles).
    """
    # A caller (a test) may hand over its own way to run the Twisted work.
    runner = ctx.obj if callable(ctx.obj) else react_runner
    ctx.obj = Admin(Location.from_options(**options), runner)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the completion script for SHELL.

    For bash: eval "$(kafscale-admin completion bash)"
    """
    complete = get_completion_class(shell)(main, {}, PROG_NAME, "_KAFSCALE_ADMIN_COMPLETE")
    click.echo(complete.source())


for command in (topics, groups, segments, brokers, cluster, users, top, transactions, acls, quotas):
    main.add_command(command)
