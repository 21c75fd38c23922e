"""Faults on demand: a TCP proxy in front of a real server that a test can
cut (refusing and dropping connections, like a dead endpoint) and restore,
without the server behind it losing its state; and wrappers of a real
object store or metadata store that hold, slow down or fail calls."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import deferLater
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols.portforward import ProxyClient, ProxyClientFactory, ProxyFactory, ProxyServer

from kafscale.metadata.interfaces import MetadataUnavailable
from kafscale.storage.interfaces import ObjectStoreUnavailable


class TcpProxy:
    def __init__(self, target_host, target_port):
        self.factory = _TrackingProxyFactory(target_host, target_port)
        self.port = None
        self.number = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.number}"

    async def start(self):
        endpoint = TCP4ServerEndpoint(reactor, self.number or 0, interface="127.0.0.1")
        self.port = await endpoint.listen(self.factory)
        self.number = self.port.getHost().port

    def stall(self):
        """Stop passing on what clients send, on the connections open now
        and on new ones: a request under way hangs half sent."""
        self.factory.stalled = True
        for connection in list(self.factory.connections):
            connection.transport.pauseProducing()

    def unstall(self):
        self.factory.stalled = False
        for connection in list(self.factory.connections):
            connection.transport.resumeProducing()

    async def cut(self):
        await self.port.stopListening()
        self.port = None
        for connection in list(self.factory.connections):
            connection.transport.abortConnection()

    async def restore(self):
        await self.start()

    def blackhole(self):
        """Let bytes vanish, both ways, on every connection (new ones are
        still accepted), as a network partition does, until ``let_through``."""
        self.factory.blackholed = True

    def let_through(self):
        self.factory.blackholed = False

    def lose_next_answer(self, path):
        """Let the next HTTP request for ``path`` reach the server, then drop
        the client's connection before the answer reaches it: the client
        cannot tell whether its request was applied."""
        self.factory.lose_answer_to = path.encode()

    async def close(self):
        if self.port is not None:
            await self.cut()


class _AnswerLosingClient(ProxyClient):
    def dataReceived(self, data):
        if self.peer.factory.blackholed:
            return
        if self.peer.losing:
            self.peer.transport.abortConnection()
            self.transport.abortConnection()
            return
        super().dataReceived(data)


class _AnswerLosingClientFactory(ProxyClientFactory):
    protocol = _AnswerLosingClient


class _TrackedProxyServer(ProxyServer):
    clientProtocolFactory = _AnswerLosingClientFactory
    losing = False

    def dataReceived(self, data):
        if self.factory.blackholed:
            return
        trap = self.factory.lose_answer_to
        if trap is not None and trap in data:
            self.factory.lose_answer_to = None
            self.losing = True
        super().dataReceived(data)

    def connectionMade(self):
        self.factory.connections.add(self)
        super().connectionMade()
        if self.factory.stalled:
            self.transport.pauseProducing()

    def connectionLost(self, reason):
        self.factory.connections.discard(self)
        super().connectionLost(reason)


class _TrackingProxyFactory(ProxyFactory):
    protocol = _TrackedProxyServer

    def __init__(self, host, port):
        super().__init__(host, port)
        self.connections = set()
        self.lose_answer_to = None
        self.blackholed = False
        self.stalled = False


class Held:
    """An object store whose next puts wait for the test, then fail or go
    through to a real store."""

    def __init__(self, store):
        self.store = store
        self.gates = []

    def hold(self):
        gate = Deferred()
        self.gates.append(gate)
        return gate

    def put(self, key, data):
        if not self.gates:
            return self.store.put(key, data)
        return self.gates.pop(0).addCallback(lambda _: self.store.put(key, data))

    def __getattr__(self, name):
        return getattr(self.store, name)


class Unreliable:
    """A metadata store whose next commits fail at a chosen point: refused
    before the store applies them (``refusals``: the errors to raise, in
    order), or applied and then answered with a timeout (``lose_answers``);
    and whose next reads of a partition's state can fail (``failing_reads``)."""

    def __init__(self, store):
        self.store = store
        self.refusals = []
        self.lose_answers = 0
        self.failing_reads = 0

    def commit_segments(self, commits):
        if self.refusals:
            return fail(self.refusals.pop(0))

        def answer(committed):
            if self.lose_answers:
                self.lose_answers -= 1
                raise MetadataUnavailable("timed out")
            return committed

        return self.store.commit_segments(commits).addCallback(answer)

    def partition_state(self, *args):
        if self.failing_reads:
            self.failing_reads -= 1
            return fail(MetadataUnavailable("timed out"))
        return self.store.partition_state(*args)

    def __getattr__(self, name):
        return getattr(self.store, name)


class Throttled:
    """An object store whose puts each take ``delay`` seconds more (a store
    that is behind, not failing), or wait for the test while ``held``."""

    def __init__(self, store, delay):
        self.store = store
        self.delay = delay
        self.puts = 0
        self._gate = None

    def hold(self):
        """Puts from now on wait until ``release``."""
        if self._gate is None:
            self._gate = Deferred()

    def release(self):
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.callback(None)

    async def put(self, key, data):
        self.puts += 1
        while self._gate is not None:
            await self._gate
        await deferLater(reactor, self.delay)
        return await self.store.put(key, data)

    def __getattr__(self, name):
        return getattr(self.store, name)


class Failing:
    """An object store whose ``failures`` puts after the first ``after`` fail,
    as a store that is down does after its own retries."""

    def __init__(self, store, failures, after=0):
        self.store = store
        self.failures = failures
        self.after = after

    def put(self, key, data):
        if self.after:
            self.after -= 1
        elif self.failures:
            self.failures -= 1
            return fail(ObjectStoreUnavailable("the object store is down"))
        return self.store.put(key, data)

    def __getattr__(self, name):
        return getattr(self.store, name)
