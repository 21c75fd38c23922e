"""From where the stores are (the options the broker and kafscale-admin
share) to store objects: etcd or the embedded SQLite store for metadata, S3
or a local directory for objects."""

import os
from dataclasses import dataclass

from kafscale.etcd.layout import cluster_prefix
from kafscale.etcd.store import EtcdMetadataStore
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import CHANGE_AREAS
from kafscale.security.tls import ClientTLS
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.reporting import ReportingObjectStore
from kafscale.storage.s3 import S3ObjectStore, raise_tcp_read_size


@dataclass(frozen=True, slots=True)
class EtcdSecurity:
    """How the broker and kafscale-admin reach a secured etcd: a CA its
    certificate must chain to, a client certificate and key (PEM files), a
    user and password of etcd's own authentication."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None

    def tls(self):
        """-> the ClientTLS for https:// endpoints (the system's roots
        without a CA)."""
        return ClientTLS(self.ca, self.cert, self.key)

    def credentials(self):
        return None if self.user is None else (self.user, self.password or "")


def embedded_metadata_path(data_dir):
    return os.path.join(data_dir, "metadata.sqlite")


def objects_dir(data_dir):
    return os.path.join(data_dir, "objects")


def metadata_store(*, data_dir, etcd=None, cluster_id="kafscale", timeout=5.0, lease_ttl=10,
                   watched=CHANGE_AREAS, reactor=None, etcd_security=None, requests=None):
    """The metadata store: on etcd when ``etcd`` (comma-separated endpoints)
    is given, under the cluster's prefix, with ``lease_ttl`` and ``watched``
    (see EtcdMetadataStore) and ``etcd_security`` (an EtcdSecurity, or None
    for none); else embedded in ``data_dir``. ``timeout`` bounds each etcd
    request, or a wait for the embedded store's lock. ``requests`` (an
    IMetadataRequests, if any) hears of every call. Raises ValueError for
    etcd TLS files that cannot be used."""
    if etcd:
        security = etcd_security or EtcdSecurity()
        return EtcdMetadataStore(etcd, cluster_prefix(cluster_id), lease_ttl=lease_ttl, timeout=timeout,
                                 watched=watched, reactor=reactor, tls=security.tls(),
                                 credentials=security.credentials(), requests=requests)
    return EmbeddedMetadataStore(embedded_metadata_path(data_dir), reactor=reactor, busy_timeout=timeout,
                                 requests=requests)


def object_store(*, data_dir, s3_bucket=None, s3_endpoint=None, s3_region=None, s3_prefix="", requests=None,
                 **s3_options):
    """The object store: the S3 bucket ``s3_bucket`` (the options go to
    S3ObjectStore), else a directory in ``data_dir``; ``requests`` (an
    IObjectStoreRequests, if any) hears of every request S3 is sent, or
    every call of the directory. Raises ValueError for S3 settings that
    cannot work."""
    if s3_bucket:
        raise_tcp_read_size()
        return S3ObjectStore(s3_bucket, endpoint=s3_endpoint, region=s3_region, prefix=s3_prefix,
                             environ=os.environ, requests=requests, **s3_options)
    store = LocalObjectStore(objects_dir(data_dir))
    return store if requests is None else ReportingObjectStore(store, requests)
