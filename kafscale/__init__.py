"""Kafscale: a Kafka-compatible broker that keeps records in an object store
and metadata in etcd."""

__version__ = "0.1.0"
