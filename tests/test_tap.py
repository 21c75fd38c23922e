"""``twistd kafscale``'s options and environment fallbacks, alone and in a cluster."""

import os

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.python import usage
from twisted.trial import unittest

from kafscale.etcd.store import EtcdMetadataStore
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.view import SoleBroker
from kafscale.tap import InOrder, ObjectStoreService, Options, cluster_view, makeService, metadata_store


class OptionsTests(unittest.TestCase):
    def parse(self, *args, **env):
        self.patch(os, "environ", dict(os.environ, **env))
        options = Options()
        options.parseOptions(list(args))
        return options.config()

    def test_defaults(self):
        config = self.parse()
        self.assertEqual(config.listen, "tcp:9092:interface=127.0.0.1")
        self.assertEqual((config.advertised_host, config.advertised_port), ("127.0.0.1", 9092))
        self.assertEqual(config.data_dir, "kafscale-data")
        self.assertEqual(config.max_request_size, 104857600)

    def test_environment_fills_what_the_command_line_left(self):
        config = self.parse("--node-id", "3", KAFSCALE_NODE_ID="7", KAFSCALE_DATA_DIR="/srv/k",
                            KAFSCALE_MAX_REQUEST_SIZE="2048")
        self.assertEqual(config.node_id, 3)
        self.assertEqual(config.data_dir, "/srv/k")
        self.assertEqual(config.max_request_size, 2048)

    def test_advertised_address(self):
        config = self.parse("--listen", "tcp:19092:interface=0.0.0.0")
        self.assertEqual((config.advertised_host, config.advertised_port), ("127.0.0.1", 19092))
        config = self.parse("--listen", "unix:/tmp/k.sock", "--advertise", "kafka.example:9093")
        self.assertEqual((config.advertised_host, config.advertised_port), ("kafka.example", 9093))

    def test_every_option_reaches_the_config(self):
        config = self.parse("--group-initial-rebalance-delay-ms", "0", "--auto-create-topics", "no",
                            "--flush-interval-ms", "250", KAFSCALE_GROUP_MAX_SESSION_TIMEOUT_MS="60000",
                            KAFSCALE_FLUSH_BYTES="4194304")
        self.assertEqual(config.group_initial_rebalance_delay_ms, 0)
        self.assertIs(config.auto_create_topics, False)
        self.assertEqual((config.flush_interval_ms, config.flush_bytes), (250, 4 << 20))
        self.assertEqual(config.group_max_session_timeout_ms, 60000)
        self.assertIs(self.parse().auto_create_topics, True)

    def test_bad_values_are_usage_errors(self):
        self.assertRaises(usage.UsageError, self.parse, "--node-id", "x")
        self.assertRaises(usage.UsageError, self.parse, "--log-level", "loud")
        self.assertRaises(usage.UsageError, self.parse, "--listen", "unix:/tmp/k.sock")
        self.assertRaises(usage.UsageError, self.parse, KAFSCALE_MAX_REQUEST_SIZE="12")
        self.assertRaises(usage.UsageError, self.parse, "--flush-bytes", "0")
        self.assertRaises(usage.UsageError, self.parse, "--flush-interval-ms", "-1")
        self.assertRaises(usage.UsageError, self.parse, "--group-min-session-timeout-ms", "90000",
                          "--group-max-session-timeout-ms", "60000")


    def test_authorization_options(self):
        config = self.parse()
        self.assertEqual((config.authorizer, config.super_users, config.allow_everyone_if_no_acl_found),
                         ("none", (), False))
        # Naming super users or the fallback asks for ACLs.
        config = self.parse("--super-users", "User:admin; User:ops")
        self.assertEqual((config.authorizer, config.super_users), ("acl", ("User:admin", "User:ops")))
        self.assertEqual(self.parse("--authorizer", "acl").allow_everyone_if_no_acl_found, False)
        self.assertRaises(usage.UsageError, self.parse, "--authorizer", "none", "--super-users", "User:a")
        self.assertRaises(usage.UsageError, self.parse, "--authorizer", "ranger")
        self.assertRaises(usage.UsageError, self.parse, "--super-users", "admin")
        config = self.parse("--quota-window-num", "3", "--quota-window-size-seconds", "2")
        self.assertEqual((config.quota_window_num, config.quota_window_size_seconds), (3, 2))
        self.assertRaises(usage.UsageError, self.parse, "--quota-window-num", "0")
        config = self.parse(KAFSCALE_ALLOW_EVERYONE_IF_NO_ACL_FOUND="true")
        self.assertEqual((config.authorizer, config.allow_everyone_if_no_acl_found), ("acl", True))

    def test_inter_broker_options(self):
        config = self.parse()
        self.assertEqual(config.inter_broker_listener, "PLAINTEXT")
        listeners = "SASL_SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092"
        tls = ("--tls-cert", "broker.pem", "--tls-key", "broker.key")
        # The first listener by default, as today; another by name.
        self.assertEqual(self.parse("--listeners", listeners, *tls).inter_broker_listener, "SASL_SSL")
        config = self.parse("--listeners", listeners, *tls, "--inter-broker-listener", "plaintext")
        self.assertEqual(config.inter_broker_listener, "PLAINTEXT")
        self.assertRaises(usage.UsageError, self.parse, "--listeners", listeners, *tls,
                          "--inter-broker-listener", "SSL")
        self.assertRaises(usage.UsageError, self.parse, "--inter-broker-sasl-mechanism", "GSSAPI")
        self.assertRaises(usage.UsageError, self.parse, "--inter-broker-username", "broker")
        # (The environment given stays for the calls after.)
        config = self.parse("--listeners", listeners, *tls, "--inter-broker-username", "broker",
                            KAFSCALE_INTER_BROKER_PASSWORD="secret")
        self.assertEqual((config.inter_broker_listener, config.inter_broker_sasl_mechanism,
                          config.inter_broker_username, config.inter_broker_password),
                         ("SASL_SSL", "SCRAM-SHA-512", "broker", "secret"))
        config = self.parse("--listeners", listeners, *tls, KAFSCALE_INTER_BROKER_LISTENER="SASL_SSL",
                            KAFSCALE_INTER_BROKER_SASL_MECHANISM="plain", KAFSCALE_INTER_BROKER_USERNAME="b")
        self.assertEqual((config.inter_broker_sasl_mechanism, config.inter_broker_username), ("PLAIN", "b"))


class ClusterOptionsTests(unittest.TestCase):
    def parse(self, *args, **env):
        self.patch(os, "environ", dict(os.environ, **env))
        options = Options()
        options.parseOptions(list(args))
        return options.config()

    def test_etcd_selects_cluster_mode(self):
        config = self.parse("--etcd", "http://a:2379,http://b:2379", "--cluster-id", "prod")
        self.assertEqual((config.etcd, config.node_id, config.lease_ttl), ("http://a:2379,http://b:2379", None, 10))
        store = metadata_store(config)
        self.assertIsInstance(store, EtcdMetadataStore)
        self.assertEqual(store.keys.prefix, b"/kafscale/prod/")
        self.assertEqual(cluster_view(config, store).node_id, None)

    def test_environment_and_given_node_id(self):
        config = self.parse("--node-id", "3", KAFSCALE_ETCD="http://a:2379", KAFSCALE_LEASE_TTL="4")
        self.assertEqual((config.etcd, config.node_id, config.lease_ttl), ("http://a:2379", 3, 4))

    def test_alone_without_etcd(self):
        config = self.parse("--data-dir", self.mktemp())
        self.assertEqual((config.etcd, config.node_id), (None, 0))
        self.assertEqual(cluster_view(config, None).node_id, 0)

    def test_bad_lease_ttl(self):
        self.assertRaises(usage.UsageError, self.parse, "--etcd", "http://a:2379", "--lease-ttl", "0")


class Recording(Service):
    def __init__(self, name, events, stopping=None):
        self.setName(name)
        self.events = events
        self.stopping = stopping

    def startService(self):
        super().startService()
        self.events.append(("start", self.name))

    def stopService(self):
        super().stopService()
        self.events.append(("stop", self.name))
        return self.stopping


class ServiceTreeTests(unittest.TestCase):
    def test_children_stop_one_at_a_time_last_first(self):
        events = []
        flushing = Deferred()
        tree = InOrder()
        for child in (Recording("metadata", events), Recording("broker", events, flushing),
                      Recording("listener", events)):
            child.setServiceParent(tree)
        tree.startService()
        stopped = tree.stopService()
        self.assertEqual(events, [("start", "metadata"), ("start", "broker"), ("start", "listener"),
                                  ("stop", "listener"), ("stop", "broker")])
        flushing.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(events[-1], ("stop", "metadata"))

    def test_the_stores_and_the_view_outlive_the_broker(self):
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        tree = makeService(options)
        self.assertIsInstance(tree, InOrder)
        children = list(tree)
        self.assertEqual([type(child) for child in children[:2]], [EmbeddedMetadataStore, ObjectStoreService])
        self.assertEqual([child.name for child in children[2:]], ["admin", "view", "broker", "listener", "group-lag"])
        self.assertIsInstance(tree.getServiceNamed("view"), SoleBroker)
        self.assertIs(tree.getServiceNamed("broker").view, tree.getServiceNamed("view"))
