"""Faults on demand: a TCP proxy in front of a real server that a test can
cut (refusing and dropping connections, like a dead endpoint) and restore,
without the server behind it losing its state."""

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols.portforward import ProxyFactory, ProxyServer


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

    async def cut(self):
        await self.port.stopListening()
        self.port = None
        for connection in list(self.factory.connections):
            connection.transport.abortConnection()

    async def restore(self):
        await self.start()

    async def close(self):
        if self.port is not None:
            await self.cut()


class _TrackedProxyServer(ProxyServer):
    def connectionMade(self):
        self.factory.connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason):
        self.factory.connections.discard(self)
        super().connectionLost(reason)


class _TrackingProxyFactory(ProxyFactory):
    protocol = _TrackedProxyServer

    def __init__(self, host, port):
        super().__init__(host, port)
        self.connections = set()
