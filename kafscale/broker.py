"""The broker's shared state: its identity, the cluster it sees, and the
services that own its backends."""

from dataclasses import dataclass

from twisted.application.service import MultiService


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int
    rack: str | None


class Broker(MultiService):
    """What every handler sees as ``request.broker``."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.cluster_id = config.cluster_id
        self.topics = {}

    def live_brokers(self):
        config = self.config
        return [BrokerAddress(config.node_id, config.advertised_host, config.advertised_port, config.rack)]

    def controller_id(self):
        return self.config.node_id

    def topic_by_id(self, topic_id):
        return next((t for t in self.topics.values() if t.topic_id == topic_id), None)

    def leader_of(self, topic, partition):
        return self.config.node_id, 0
