"""What the broker's two HTTP clients (S3 and etcd, both on treq) share."""

from twisted.internet.defer import succeed
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer


@implementer(IBodyProducer)
class BytesBody:
    """A request body already in memory, written in one go with its length
    (S3 refuses chunked uploads, and a known length costs nothing here)."""

    def __init__(self, data: bytes):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self):
        """Nothing to pause: everything was written at once."""

    def resumeProducing(self):
        """Nothing to resume: everything was written at once."""

    def stopProducing(self):
        """Nothing to stop: everything was written at once."""
