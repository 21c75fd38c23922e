"""kafscale.stores: the options name the stores the broker and kafscale-admin open."""

import os

from twisted.trial.unittest import TestCase

from kafscale import stores
from kafscale.etcd.store import EtcdMetadataStore
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.s3 import S3ObjectStore


class MetadataStoreTests(TestCase):
    def test_etcd_under_the_cluster_prefix(self):
        store = stores.metadata_store(data_dir=self.mktemp(), etcd="http://a:2379,http://b:2379", cluster_id="prod",
                                      lease_ttl=4)
        self.assertIsInstance(store, EtcdMetadataStore)
        self.assertEqual((store.keys.prefix, store.lease_ttl), (b"/kafscale/prod/", 4))

    def test_embedded_in_the_data_dir(self):
        data_dir = self.mktemp()
        store = stores.metadata_store(data_dir=data_dir, cluster_id="prod")
        self.assertIsInstance(store, EmbeddedMetadataStore)
        self.assertEqual(store.path, os.path.join(data_dir, "metadata.sqlite"))


class ObjectStoreTests(TestCase):
    def test_s3_bucket(self):
        self.patch(os, "environ", {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"})
        store = stores.object_store(data_dir=self.mktemp(), s3_bucket="segments", s3_endpoint="http://127.0.0.1:9",
                                    s3_prefix="prod")
        self.addCleanup(store.close)
        self.assertIsInstance(store, S3ObjectStore)
        self.assertEqual((store.bucket, store.endpoint, store.prefix), ("segments", "http://127.0.0.1:9", "prod/"))

    def test_s3_without_credentials(self):
        self.patch(os, "environ", {})
        with self.assertRaises(ValueError):
            stores.object_store(data_dir=self.mktemp(), s3_bucket="segments")

    def test_directory_in_the_data_dir(self):
        data_dir = self.mktemp()
        store = stores.object_store(data_dir=data_dir)
        self.addCleanup(store.close)
        self.assertIsInstance(store, LocalObjectStore)
        self.assertEqual(store.root, os.path.abspath(os.path.join(data_dir, "objects")))
