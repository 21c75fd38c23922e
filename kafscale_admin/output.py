"""Listings as rich tables for people, or JSON for programs."""

import datetime
import json
import sys

import click
from rich.console import Console
from rich.table import Table

output_option = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="Print a table, or JSON for programs.",
)


class Column:
    """One column of a listing: the row key it shows, its header, and how
    its value reads in a table (JSON keeps the raw value)."""

    def __init__(self, key, header=None, show=None, justify="left"):
        self.key = key
        self.header = header or key.replace("_", " ")
        self.show = show or _plain
        self.justify = justify


def number(key, header=None):
    return Column(key, header, justify="right")


def timestamp(key, header=None):
    return Column(key, header, show=iso_time)


def _plain(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def iso_time(ms):
    """A unix time in milliseconds as ISO 8601 UTC ("-" for none)."""
    if ms is None or ms < 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds")


def console(stderr=False):
    # Resolved per call: click's test runner swaps the standard streams.
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=False)


def table(rows, columns, title=None):
    """A rich Table of ``rows`` (dicts)."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column.header, justify=column.justify, overflow="fold")
    for row in rows:
        result.add_row(*(column.show(row.get(column.key)) for column in columns))
    return result


def emit(output, rows, columns, title=None, document=None, empty="none"):
    """Print ``rows`` as a table (or, when there are none, the title and
    ``empty``), or ``document`` (default: the rows) as JSON."""
    if output == "json":
        emit_json(rows if document is None else document)
    elif rows:
        console().print(table(rows, columns, title))
    else:
        say(f"{title}: {empty}" if title else empty)


def emit_json(document):
    click.echo(json.dumps(document, indent=2, default=str))


def say(text):
    """A line for people; rich markup allowed."""
    console().print(text)
