"""From where the stores are (the options the broker and kafscale-admin
share) to store objects: etcd or the embedded SQLite store for metadata, S3
or a local directory for objects."""

import os

from kafscale.etcd.layout import cluster_prefix
from kafscale.etcd.store import EtcdMetadataStore
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import CHANGE_AREAS
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.s3 import S3ObjectStore, raise_tcp_read_size


def embedded_metadata_path(data_dir):
    return os.path.join(data_dir, "metadata.sqlite")


def objects_dir(data_dir):
    return os.path.join(data_dir, "objects")


def metadata_store(*, data_dir, etcd=None, cluster_id="kafscale", timeout=5.0, lease_ttl=10,
                   watched=CHANGE_AREAS, reactor=None):
    """The metadata store: on etcd when ``etcd`` (comma-separated endpoints)
    is given, under the cluster's prefix, with ``lease_ttl`` and ``watched``
    (see EtcdMetadataStore); else embedded in ``data_dir``. ``timeout`` bounds
    each etcd request, or a wait for the embedded store's lock."""
    if etcd:
        return EtcdMetadataStore(etcd, cluster_prefix(cluster_id), lease_ttl=lease_ttl, timeout=timeout,
                                 watched=watched, reactor=reactor)
    return EmbeddedMetadataStore(embedded_metadata_path(data_dir), reactor=reactor, busy_timeout=timeout)


def object_store(*, data_dir, s3_bucket=None, s3_endpoint=None, s3_region=None, s3_prefix="", **s3_options):
    """The object store: the S3 bucket ``s3_bucket`` (the options go to
    S3ObjectStore), else a directory in ``data_dir``. Raises ValueError for
    S3 settings that cannot work."""
    if s3_bucket:
        raise_tcp_read_size()
        return S3ObjectStore(s3_bucket, endpoint=s3_endpoint, region=s3_region, prefix=s3_prefix,
                             environ=os.environ, **s3_options)
    return LocalObjectStore(objects_dir(data_dir))
