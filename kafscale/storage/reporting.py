"""An object store whose every call is told to an IObjectStoreRequests:
for stores that make no requests of their own to count (a local
directory), each call is one request."""

import time

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure
from zope.interface import implementer

from kafscale.storage.interfaces import (
    CLIENT_ERROR,
    NOT_FOUND,
    OK,
    SERVER_ERROR,
    IObjectStore,
    ObjectNotFound,
)


@implementer(IObjectStore)
class ReportingObjectStore:
    """``store``'s calls, each told to ``requests`` under S3's name for it."""

    def __init__(self, store, requests):
        self.store = store
        self.requests = requests

    def __repr__(self):
        return repr(self.store)

    def put(self, key, data):
        return self._call("PutObject", len(data), self.store.put, key, data)

    def get(self, key, start=None, end=None):
        return self._call("GetObject", 0, self.store.get, key, start, end)

    def head(self, key):
        return self._call("HeadObject", 0, self.store.head, key)

    def list(self, prefix):
        return self._call("ListObjectsV2", 0, self.store.list, prefix)

    def delete(self, key):
        return self._call("DeleteObject", 0, self.store.delete, key)

    def close(self):
        return self.store.close()

    def _call(self, operation, sent, method, *args):
        started = time.monotonic()

        def report(result):
            received = len(result) if isinstance(result, bytes) else 0
            if not isinstance(result, Failure):
                outcome = OK
            elif result.check(ObjectNotFound):
                outcome = NOT_FOUND
            elif result.check(ValueError):
                outcome = CLIENT_ERROR
            else:
                outcome = SERVER_ERROR
            self.requests.requested(operation, outcome, time.monotonic() - started, sent, received)
            return result

        return maybeDeferred(method, *args).addBoth(report)
