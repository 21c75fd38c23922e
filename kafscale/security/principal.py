"""Principals, as Kafka spells them: ``User:NAME``."""

ANONYMOUS = "User:ANONYMOUS"
"""The principal of a connection that did not authenticate (PLAINTEXT, or
SSL without a client certificate), as Kafka names it."""


def user(name):
    """The principal of the user ``name``."""
    return "User:" + name
