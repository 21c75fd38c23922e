"""The admin HTTP server (``--admin-listen``): ``/metrics`` for Prometheus,
``/healthz`` and ``/readyz`` for probes and load balancers."""

from prometheus_client.exposition import choose_encoder
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from kafscale.log import logger
from kafscale.metadata.interfaces import MetadataError

log = logger("kafscale.metrics.admin")


class NotReady(Exception):
    """Why the broker should not be sent clients now."""


class Readiness:
    """Whether the broker should be sent clients: it runs and has taken its
    partitions (``broker``), every listener in ``listeners`` is accepting,
    its hold on its partitions is sound (the cluster view is healthy), and
    ``metadata`` answers within ``timeout`` seconds."""

    def __init__(self, broker, listeners, metadata, timeout=2.0):
        self._broker = broker
        self._listeners = listeners
        self._metadata = metadata
        self._timeout = timeout

    async def check(self):
        """Raise NotReady saying why not."""
        broker = self._broker
        if not broker.ready:
            raise NotReady("starting: state not loaded or partitions not taken yet")
        if not all(listener.accepting for listener in self._listeners):
            raise NotReady("not accepting clients (starting or stopping)")
        if not broker.view.healthy():
            raise NotReady("cluster membership in doubt (session lease not renewed)")
        answer = self._metadata.brokers()
        answer.addTimeout(self._timeout, broker.reactor)
        try:
            await answer
        except MetadataError as error:
            raise NotReady(f"metadata store unavailable: {error}") from None
        except Exception as error:
            raise NotReady(f"metadata store did not answer: {error!r}") from None


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, registry):
        super().__init__()
        self._registry = registry

    def render_GET(self, request):
        accept = request.getHeader("accept")
        encoder, content_type = choose_encoder(accept)
        request.setHeader("content-type", content_type)
        # On the reactor: collectors read the broker's state, which only
        # this thread may touch.
        return encoder(self._registry)


class _Healthy(Resource):
    """Answering at all shows the process and its reactor are responsive."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"ok\n"


class _Ready(Resource):
    isLeaf = True

    def __init__(self, readiness):
        super().__init__()
        self._readiness = readiness

    def render_GET(self, request):
        request.setHeader("content-type", "text/plain; charset=utf-8")
        gone = []

        def answer(result):
            if gone:  # the client hung up
                return
            if isinstance(result, Failure):
                reason = result.value if result.check(NotReady) else f"check failed: {result.value!r}"
                request.setResponseCode(503)
                request.write(f"not ready: {reason}\n".encode())
            else:
                request.write(b"ready\n")
            request.finish()

        checking = Deferred.fromCoroutine(self._readiness.check()).addBoth(answer)
        request.notifyFinish().addErrback(lambda _: (gone.append(True), checking.cancel()))
        return NOT_DONE_YET


class _QuietSite(Site):
    """A Site that keeps no access log: probes and scrapes every few
    seconds are not news."""

    noisy = False

    def log(self, request):
        pass


def admin_site(registry, readiness):
    root = Resource()
    root.putChild(b"metrics", _Metrics(registry))
    root.putChild(b"healthz", _Healthy())
    root.putChild(b"readyz", _Ready(readiness))
    return _QuietSite(root)


class AdminService(Service):
    """Serves ``site`` on ``endpoint`` while running. Started before the
    broker and stopped after it, so that probes see it start and drain. A
    port that cannot be listened on is logged, not fatal: the broker serves
    clients regardless. ``listening`` fires once the attempt is over;
    ``port`` is the listening port then, or None."""

    name = "admin"

    def __init__(self, endpoint, site=None):
        self.endpoint = endpoint
        self.site = site
        self.port = None
        self.listening = None

    def startService(self):
        super().startService()
        self.listening = Deferred.fromCoroutine(self._listen())

    async def _listen(self):
        try:
            self.port = await self.endpoint.listen(self.site)
        except Exception as error:
            log.error("cannot serve the admin API on {endpoint}: {error}", endpoint=self.endpoint, error=error)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
