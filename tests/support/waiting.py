"""Waiting in tests without blocking the reactor: ``eventually`` polls a
condition until it holds or a deadline passes, and fails the test with a
message that names what did not happen."""

import inspect

from twisted.internet import reactor
from twisted.internet.task import deferLater


def sleep(seconds):
    """A Deferred that fires after ``seconds`` on the reactor."""
    return deferLater(reactor, seconds)


async def eventually(predicate, timeout=10.0, interval=0.02, what=None):
    """Wait until ``predicate()`` (which may return an awaitable) is true;
    -> seconds waited. Fails with AssertionError after ``timeout`` seconds,
    naming ``what`` (or the predicate)."""
    started = reactor.seconds()
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return reactor.seconds() - started
        if reactor.seconds() - started > timeout:
            raise AssertionError(f"{what or predicate} did not hold within {timeout} s")
        await deferLater(reactor, interval)
