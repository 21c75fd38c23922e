"""Reporting a metadata store's requests (for metrics): each call a store
makes of its backend, with how long it took and how it ended."""

import time

from twisted.python.failure import Failure
from zope.interface import Interface

from kafscale.metadata.interfaces import MetadataError, MetadataUnavailable

OK = "ok"
REFUSED = "refused"
"""Answered with a MetadataError of the domain (Fenced, TopicExists, ...)."""
UNAVAILABLE = "unavailable"
ERROR = "error"


class IMetadataRequests(Interface):
    def requested(operation, outcome, seconds):
        """The store's ``operation`` (its method's name: commit_segments,
        fetch_offsets, ...) ended with ``outcome`` after ``seconds``."""


def reported(requests, operation, deferred):
    """``deferred`` (a store call under way), told to ``requests`` (an
    IMetadataRequests, or None) once it ends."""
    if requests is None:
        return deferred
    started = time.monotonic()

    def report(result):
        outcome = OK
        if isinstance(result, Failure):
            if result.check(MetadataUnavailable):
                outcome = UNAVAILABLE
            elif result.check(MetadataError):
                outcome = REFUSED
            else:
                outcome = ERROR
        requests.requested(operation, outcome, time.monotonic() - started)
        return result

    return deferred.addBoth(report)
