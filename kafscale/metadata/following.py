"""What one area of a metadata store holds, kept by a service as last read
and read again whenever the store reports a change there."""

from twisted.application.service import Service

from kafscale.coalescing import Coalescing
from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError

log = logger("kafscale.metadata.following")


class FollowingService(Service):
    """Follows the ``area`` of ``metadata`` (an IMetadataStore, which
    reports changes by area to its subscribers). `load` reads it (the
    broker awaits it before it serves) and follows its changes from then
    on; changes that come during a read are read once more after it.
    Subclasses say how to read (`_read`) and what to keep (`_keep`)."""

    area = None
    what = None
    """What the area holds, for the log."""

    def __init__(self, metadata):
        self.metadata = metadata
        self._unsubscribe = None
        self._reread = Coalescing(self._read_again, f"{self.what} reread").run

    async def load(self):
        """Raises MetadataUnavailable while the store cannot be reached."""
        if self._unsubscribe is None:
            # Subscribe before reading: a change made meanwhile is seen.
            self._unsubscribe = self.metadata.subscribe(self._changed)
        self._keep(await self._read())

    def stopService(self):
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _read(self):
        """-> a Deferred firing with what the area holds."""
        raise NotImplementedError

    def _keep(self, value):
        raise NotImplementedError

    def _changed(self, areas):
        if self.area in areas:
            self._reread()

    async def _read_again(self):
        try:
            self._keep(await self._read())
        except MetadataError as error:
            log.warn("cannot read the {what} again; keeping what was read before: {error}", what=self.what,
                     error=error)
