"""Broker processes started the way the operator's StatefulSet starts them:
with the environment a pod gets from the rendered ConfigMap and container
env (field references resolved and $(VAR) expanded as the kubelet does),
on a real etcd and a moto bucket. Only what one host forces is changed:
each broker's ports and advertised address (a pod's DNS name does not
resolve here). Node ids come from the ordinals, and a broker killed and
started again under its ordinal comes back under its node id; a SCRAM
listener takes the operator's connection as the operator computes it."""

import os
import re
import signal
import subprocess
import sys
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial import unittest

from kafscale_operator.cluster import render
from kafscale_operator.kafka import client_settings
from kafscale_operator.topics import KafkaTopics, TopicSpec
from tests.support.brokers import SOURCE_ROOT, BrokerProcess, free_port, in_thread
from tests.support.clients import consume, produce
from tests.support.etcd_server import etcd_endpoint, missing_reason
from tests.support.kubernetes import cluster
from tests.support.s3_server import s3_server, s3_store
from tests.support.topics import cluster_view
from tests.support.waiting import eventually

LEASE_TTL = 2


def pod_environment(manifests, ordinal, secrets):
    """The environment of broker ``ordinal``'s container, as the kubelet
    makes it from ``manifests`` (and ``secrets``: {name: {key: value}})."""
    [config_map] = [m for m in manifests if m["kind"] == "ConfigMap"]
    [statefulset] = [m for m in manifests if m["kind"] == "StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.name": f"{statefulset['metadata']['name']}-{ordinal}",
              "metadata.namespace": statefulset["metadata"]["namespace"],
              "metadata.labels['apps.kubernetes.io/pod-index']": str(ordinal)}
    environment = dict(config_map["data"])
    for variable in container["env"]:
        if "value" in variable:
            value = re.sub(r"\$\((\w+)\)", lambda m: environment[m.group(1)], variable["value"])
        elif "fieldRef" in variable["valueFrom"]:
            value = fields[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            value = secrets[reference["name"]][reference["key"]]
        environment[variable["name"]] = value
    return environment


class RenderedBrokersTests(unittest.TestCase):
    timeout = 90

    async def setUp(self):
        reason = missing_reason("3.5")
        if reason:
            raise unittest.SkipTest(reason)
        self.s3 = s3_server()
        self.bucket = (await s3_store(self, self.s3)).bucket
        self.secrets = {"s3": {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key}}
        self.brokers = {}
        self.render(cluster())

    def render(self, resource):
        """Render ``resource`` on the test's etcd and bucket."""
        resource["metadata"]["name"] = f"k8s-{uuid.uuid4().hex[:8]}"
        resource["spec"].update(
            leaseTtlSeconds=LEASE_TTL, etcd={"endpoints": [etcd_endpoint("3.5")]},
            storage={"s3": {"bucket": self.bucket, "endpoint": self.s3.endpoint, "region": "us-east-1",
                            "credentialsSecret": {"name": "s3"}}})
        self.resource = resource
        self.manifests = render(resource)

    async def start(self, ordinal):
        port = free_port()
        environment = pod_environment(self.manifests, ordinal, self.secrets)
        # one host: the broker's own port, and an address that resolves
        environment.update(KAFSCALE_ADMIN_LISTEN=f"tcp:{free_port()}:interface=127.0.0.1")
        if "KAFSCALE_LISTENERS" in environment:
            environment["KAFSCALE_LISTENERS"] = re.sub(r"0\.0\.0\.0:\d+", f"127.0.0.1:{port}",
                                                       environment["KAFSCALE_LISTENERS"])
            environment["KAFSCALE_ADVERTISED_LISTENERS"] = re.sub(r"//[^,]+", f"//127.0.0.1:{port}",
                                                                  environment["KAFSCALE_ADVERTISED_LISTENERS"])
        else:
            environment["KAFSCALE_ADVERTISE"] = f"127.0.0.1:{port}"
        # (--listeners, from the environment, replaces the --listen it is given)
        broker = BrokerProcess(port=port, env=environment)
        self.addCleanup(in_thread, broker.stop)
        # a broker started again waits out its previous life's lease first
        await in_thread(broker.start, timeout=60)
        self.brokers[ordinal] = broker
        return broker

    async def test_node_ids_are_ordinals_and_survive_a_restart(self):
        first, second = await gatherResults([Deferred.fromCoroutine(self.start(ordinal)) for ordinal in (0, 1)])

        async def both_live():
            live, _ = await in_thread(cluster_view, first.bootstrap, "orders")
            return live == {0: first.port, 1: second.port}

        await eventually(both_live, what="brokers 0 and 1 registered under their ordinals")

        # topics are the operator's: none is made by naming it
        topics = [KafkaTopics(AdminClient({"bootstrap.servers": first.bootstrap}), timeout=15)]
        self.addCleanup(topics.clear)
        self.assertIsNone(await in_thread(topics[0].observe, "orders"))
        _, state = await in_thread(topics[0].reconcile, TopicSpec("orders", 4))
        self.assertEqual(state.partitions, 4)
        messages = [(b"k%d" % i, b"v%d" % i, None, i % 4) for i in range(40)]
        await in_thread(produce, second.bootstrap, "orders", messages)

        # the pod dies; the StatefulSet starts it again under its ordinal
        second.signal(signal.SIGKILL)
        second.process.wait()
        again = await self.start(1)

        async def back_as_one():
            live, leaders = await in_thread(cluster_view, first.bootstrap, "orders")
            return live == {0: first.port, 1: again.port} and set(leader for leader, _ in leaders.values()) <= {0, 1}

        await eventually(back_as_one, timeout=4 * LEASE_TTL + 10, what="broker 1 back under node id 1")
        received = await in_thread(consume, again.bootstrap, "orders", [0, 1, 2, 3], 40)
        self.assertEqual(sorted(message.value() for message in received), sorted(value for _, value, _, _ in messages))

    async def test_a_sasl_listener_and_the_operators_connection(self):
        """A cluster whose only listener wants SCRAM: its first user made
        with kafscale-admin before any broker runs (as README says), the
        operator connects with the settings it computes for the cluster and
        reconciles a topic through it."""
        self.render(cluster(listeners=[{"name": "scram", "port": 9092, "authentication": {"type": "scram-sha-512"}}],
                            operatorCredentials={"secretName": "operator"}))
        environment = pod_environment(self.manifests, 0, self.secrets)
        admin = subprocess.run(
            [sys.executable, "-m", "kafscale_admin", "users", "set", "operator", "--password-stdin"],
            input="operator-secret\n", capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=SOURCE_ROOT, KAFSCALE_ETCD=environment["KAFSCALE_ETCD"],
                     KAFSCALE_CLUSTER_ID=environment["KAFSCALE_CLUSTER_ID"]))
        self.assertEqual(admin.returncode, 0, admin.stderr)
        broker = await self.start(0)

        settings = client_settings(self.resource, ("operator", "operator-secret"))
        self.assertEqual((settings["security.protocol"], settings["sasl.mechanism"]), ("SASL_PLAINTEXT", "SCRAM-SHA-512"))
        settings["bootstrap.servers"] = broker.bootstrap  # the bootstrap Service, on this host
        topics = [KafkaTopics(AdminClient(settings), timeout=15)]
        self.addCleanup(topics.clear)
        _, state = await in_thread(topics[0].reconcile, TopicSpec("over-sasl", 2, {"retention.ms": "60000"}))
        self.assertEqual((state.partitions, state.configs), (2, {"retention.ms": "60000"}))

        refused = dict(settings, **{"sasl.password": "wrong"})
        with self.assertRaises(KafkaException):
            await in_thread(AdminClient(refused).list_topics, timeout=3)
