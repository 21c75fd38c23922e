"""``kafscale-admin``: manage a Kafscale cluster through its metadata store
and bucket directly, with or without a broker running."""

import click

from kafscale import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafscale-admin")
def main():
    """Manage Kafscale topics, consumer groups and segments."""
