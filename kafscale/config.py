"""The broker's settings, gathered from twistd options in one place."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    listen: str = "tcp:9092:interface=127.0.0.1"
    advertised_host: str = "127.0.0.1"
    advertised_port: int = 9092
    node_id: int = 0
    rack: str | None = None
    data_dir: str = "kafscale-data"
    # Kafka's socket.request.max.bytes
    max_request_size: int = 104857600
    log_level: str = "info"
    cluster_id: str = "kafscale"
    auto_create_topics: bool = True
    num_partitions: int = 1
