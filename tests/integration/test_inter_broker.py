"""Transaction markers cross brokers over the inter-broker listener's
security: two broker processes (a real etcd, moto) whose only listener is
SASL_SSL with SCRAM-SHA-512 and ACLs enforced, the brokers' own user a
super user made with kafscale-admin before they start. A transactional
producer writes to partitions of both brokers, commits, aborts and
commits again; a read_committed consumer sees exactly the committed
records, which it can only once every partition has its markers."""

import os
import subprocess
import sys

from confluent_kafka.admin import AdminClient, NewTopic
from twisted.internet.defer import gatherResults
from twisted.trial import unittest

from tests.support.brokers import SOURCE_ROOT, BrokerProcess, free_port, in_thread, s3_args
from tests.support.etcd_server import etcd_cluster
from tests.support.tls import make_tls
from tests.support.transactions import TRANSACTIONS, confluent_transactions, confluent_values
from tests.support.waiting import eventually

PARTITIONS = 6
USERS = {"broker": "broker-secret", "app": "app-secret"}


class SaslSslInterBrokerTests(unittest.TestCase):
    timeout = 180

    async def setUp(self):
        cluster = etcd_cluster()
        etcd, cluster_id = cluster[1], cluster[3]
        for name, password in USERS.items():
            made = await in_thread(
                subprocess.run, [sys.executable, "-m", "kafscale_admin", "users", "set", name, "--mechanism",
                                 "SCRAM-SHA-512", "--password-stdin"],
                input=password + "\n", capture_output=True, text=True, timeout=60,
                env=dict(os.environ, PYTHONPATH=SOURCE_ROOT, KAFSCALE_ETCD=etcd, KAFSCALE_CLUSTER_ID=cluster_id))
            self.assertEqual(made.returncode, 0, made.stderr)
        ca, _ = make_tls(self)
        cert, key = ca.issue("broker", server=True)
        self.client = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "app",
                       "sasl.password": USERS["app"], "ssl.ca.location": ca.ca_file}
        args = (*cluster, "--lease-ttl", "2", *TRANSACTIONS, *await s3_args(self),
                "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca.ca_file, "--authorizer", "acl",
                "--super-users", "User:broker;User:app", "--inter-broker-username", "broker")
        self.brokers = []
        for node_id in (1, 2):
            port = free_port()
            self.brokers.append(BrokerProcess(*args, "--listeners", f"SASL_SSL://127.0.0.1:{port}", "--node-id",
                                              str(node_id), port=port,
                                              env={"KAFSCALE_INTER_BROKER_PASSWORD": USERS["broker"]}))
        for broker in self.brokers:
            self.addCleanup(in_thread, broker.stop)
        await gatherResults([in_thread(broker.start, 60) for broker in self.brokers])
        self.bootstrap = ",".join(b.bootstrap for b in self.brokers)

    def leaders(self, topic=None):
        """-> the node ids of the cluster's brokers, or of ``topic``'s partitions' leaders."""
        metadata = AdminClient({"bootstrap.servers": self.bootstrap, **self.client}).list_topics(topic, timeout=10)
        if topic is None:
            return set(metadata.brokers)
        return {p.leader for p in metadata.topics[topic].partitions.values()}

    async def test_markers_cross_brokers_over_sasl_ssl(self):
        await eventually(lambda: in_thread(self.leaders).addCallback(lambda ids: ids == {1, 2}), timeout=30,
                         interval=0.3, what="both brokers in the cluster")

        def create():
            admin = AdminClient({"bootstrap.servers": self.bootstrap, **self.client})
            admin.create_topics([NewTopic("orders", PARTITIONS)])["orders"].result(20)

        await in_thread(create)
        await eventually(lambda: in_thread(self.leaders, "orders").addCallback(lambda ids: ids == {1, 2}),
                         timeout=30, interval=0.3, what="partitions on both brokers")

        committed = [b"a%d" % n for n in range(PARTITIONS)] + [b"c%d" % n for n in range(PARTITIONS)]
        await in_thread(confluent_transactions, self.bootstrap, "orders-writer", [
            (committed[:PARTITIONS], True), ([b"b%d" % n for n in range(PARTITIONS)], False),
            (committed[PARTITIONS:], True)], "orders", PARTITIONS, **self.client)
        seen = await in_thread(confluent_values, self.bootstrap, "orders", PARTITIONS, "read_committed",
                               len(committed), 30, **self.client)
        self.assertEqual(sorted(seen), sorted(committed))
