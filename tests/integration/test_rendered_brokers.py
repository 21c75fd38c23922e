"""Broker processes started the way the operator's StatefulSet starts them:
with the environment a pod gets from the rendered ConfigMap and container
env (field references resolved and $(VAR) expanded as the kubelet does),
on a real etcd and a moto bucket. Only what one host forces is changed:
each broker's ports and advertised address (a pod's DNS name does not
resolve here). Node ids come from the ordinals, and a broker killed and
started again under its ordinal comes back under its node id."""

import re
import signal
import uuid

from confluent_kafka.admin import AdminClient
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial import unittest

from kafscale_operator.cluster import render
from kafscale_operator.topics import KafkaTopics, TopicSpec
from tests.support.brokers import BrokerProcess, free_port, in_thread
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
        server = s3_server()
        bucket = (await s3_store(self, server)).bucket
        resource = cluster(
            name=f"k8s-{uuid.uuid4().hex[:8]}", replicas=2, leaseTtlSeconds=LEASE_TTL,
            storage={"s3": {"bucket": bucket, "endpoint": server.endpoint, "region": "us-east-1",
                            "credentialsSecret": {"name": "s3"}}},
            etcd={"endpoints": [etcd_endpoint("3.5")]})
        self.manifests = render(resource)
        self.secrets = {"s3": {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}}
        self.brokers = {}

    async def start(self, ordinal):
        port = free_port()
        environment = pod_environment(self.manifests, ordinal, self.secrets)
        environment.update(KAFSCALE_ADVERTISE=f"127.0.0.1:{port}",
                           KAFSCALE_ADMIN_LISTEN=f"tcp:{free_port()}:interface=127.0.0.1")
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
