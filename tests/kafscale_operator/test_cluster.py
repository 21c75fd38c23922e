import copy

from twisted.trial import unittest

from kafscale.tap import Options, _variable
from kafscale_operator import cluster as clusters
from kafscale_operator.cluster import ClusterSpecError, identity, plan, render
from tests.support.kubernetes import cluster, everything, validate_kubernetes


def by_kind(manifests, kind):
    return [m for m in manifests if m["kind"] == kind]


def statefulset(manifests):
    [found] = by_kind(manifests, "StatefulSet")
    return found


def container(manifests):
    [found] = statefulset(manifests)["spec"]["template"]["spec"]["containers"]
    return found


def env(manifests):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(manifests)["env"]}


def settings(manifests):
    [config_map] = by_kind(manifests, "ConfigMap")
    return config_map["data"]


def as_existing(manifests):
    """Manifests as the API server would list them back."""
    return copy.deepcopy(manifests)


class RenderTests(unittest.TestCase):
    def test_every_manifest_is_valid_for_kubernetes(self):
        for resource in (cluster(), everything(), cluster(replicas=0), cluster(replicas=1)):
            for manifest in render(resource):
                validate_kubernetes(self, manifest)

    def test_a_minimal_cluster(self):
        manifests = render(cluster(replicas=3))
        self.assertEqual([(m["kind"], m["metadata"]["name"]) for m in manifests], [
            ("ConfigMap", "events-config"), ("Service", "events-brokers"), ("Service", "events-bootstrap"),
            ("StatefulSet", "events-broker"), ("PodDisruptionBudget", "events-broker")])
        for manifest in manifests:
            self.assertEqual(manifest["metadata"]["namespace"], "streaming")
            self.assertEqual(manifest["metadata"]["labels"]["kafscale.io/cluster"], "events")
        self.assertEqual(statefulset(manifests)["spec"]["replicas"], 3)
        self.assertEqual(settings(manifests)["KAFSCALE_ETCD"], "http://etcd:2379")
        self.assertEqual(settings(manifests)["KAFSCALE_CLUSTER_ID"], "events")
        self.assertEqual(settings(manifests)["KAFSCALE_LISTEN"], "tcp:9092")
        self.assertEqual(settings(manifests)["KAFSCALE_AUTO_CREATE_TOPICS"], "false")

    def test_brokers_are_a_statefulset_whose_ordinal_is_the_node_id(self):
        manifests = render(cluster())
        sts = statefulset(manifests)
        self.assertEqual(sts["spec"]["serviceName"], "events-brokers")
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        self.assertNotIn("volumeClaimTemplates", sts["spec"])
        variables = env(manifests)
        self.assertEqual(variables["POD_INDEX"],
                         {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}})
        self.assertEqual(variables["KAFSCALE_NODE_ID"], "$(POD_INDEX)")
        self.assertEqual(variables["KAFSCALE_ADVERTISE"], "$(POD_NAME).events-brokers.$(POD_NAMESPACE).svc:9092")
        names = [e["name"] for e in container(manifests)["env"]]
        # $(VAR) expands only variables defined before
        self.assertLess(names.index("POD_INDEX"), names.index("KAFSCALE_NODE_ID"))
        self.assertLess(names.index("POD_NAME"), names.index("KAFSCALE_ADVERTISE"))

    def test_headless_service_publishes_brokers_before_they_are_ready(self):
        [headless, bootstrap] = by_kind(render(cluster()), "Service")
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertTrue(headless["spec"]["publishNotReadyAddresses"])
        self.assertEqual(bootstrap["spec"]["type"], "ClusterIP")
        self.assertEqual(headless["spec"]["selector"], statefulset(render(cluster()))["spec"]["selector"]["matchLabels"])

    def test_probes_use_the_admin_listener_on_every_interface(self):
        manifests = render(cluster())
        broker = container(manifests)
        self.assertEqual(broker["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"})
        self.assertEqual(broker["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
        self.assertIn({"name": "admin", "containerPort": 9644, "protocol": "TCP"}, broker["ports"])
        self.assertEqual(settings(manifests)["KAFSCALE_ADMIN_LISTEN"], "tcp:9644")

    def test_s3_credentials_come_from_the_secret(self):
        manifests = render(cluster(storage={"s3": {"bucket": "b", "credentialsSecret": {"name": "keys"}}}))
        self.assertEqual(env(manifests)["AWS_ACCESS_KEY_ID"],
                         {"secretKeyRef": {"name": "keys", "key": "AWS_ACCESS_KEY_ID"}})
        self.assertEqual(env(manifests)["AWS_SECRET_ACCESS_KEY"],
                         {"secretKeyRef": {"name": "keys", "key": "AWS_SECRET_ACCESS_KEY"}})
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", settings(manifests))

    def test_every_field_of_a_full_cluster(self):
        manifests = render(everything())
        data, variables = settings(manifests), env(manifests)
        self.assertEqual(data["KAFSCALE_LISTENERS"],
                         "SASL_SSL://0.0.0.0:9092,SSL://0.0.0.0:9093,SASL_PLAINTEXT://0.0.0.0:9094")
        self.assertEqual(variables["KAFSCALE_ADVERTISED_LISTENERS"],
                         "SASL_SSL://$(POD_NAME).events-brokers.$(POD_NAMESPACE).svc:9092,"
                         "SSL://$(POD_NAME).events-brokers.$(POD_NAMESPACE).svc:9093,"
                         "SASL_PLAINTEXT://b$(POD_INDEX).kafka.example:9094")
        self.assertNotIn("KAFSCALE_LISTEN", data)
        self.assertEqual(data["KAFSCALE_SASL_MECHANISMS"], "SCRAM-SHA-512,SCRAM-SHA-256")
        self.assertEqual(data["KAFSCALE_TLS_CLIENT_AUTH"], "required")
        self.assertEqual(data["KAFSCALE_SUPER_USERS"], "User:admin;User:operator")
        self.assertEqual(data["KAFSCALE_AUTHORIZER"], "acl")
        self.assertNotIn("KAFSCALE_AUTHORIZER", settings(render(cluster())))
        self.assertEqual((data["KAFSCALE_FLUSH_INTERVAL_MS"], data["KAFSCALE_FLUSH_BYTES"]), ("250", "4194304"))
        self.assertEqual((data["KAFSCALE_FETCH_MAX_WAIT_MS"], data["KAFSCALE_LOG_LEVEL"]), ("10000", "debug"))
        self.assertEqual(data["KAFSCALE_LEASE_TTL"], "6")
        self.assertEqual(data["KAFSCALE_CLUSTER_ID"], "events-prod")
        self.assertEqual(variables["KAFSCALE_ETCD_PASSWORD"], {"secretKeyRef": {"name": "etcd-auth", "key": "password"}})
        pod = statefulset(manifests)["spec"]["template"]["spec"]
        self.assertEqual({v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v},
                         {"tls": "broker-tls", "etcd-tls": "etcd-tls"})
        self.assertEqual(pod["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone")
        self.assertEqual(pod["nodeSelector"], {"pool": "kafka"})
        self.assertEqual(container(manifests)["resources"]["requests"]["cpu"], "500m")
        [pdb] = by_kind(manifests, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 2)
        [hpa] = by_kind(manifests, "HorizontalPodAutoscaler")
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (2, 6))
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "events-broker")
        # one LoadBalancer per broker the autoscaler may make
        external = [m for m in by_kind(manifests, "Service") if m["spec"].get("type") == "LoadBalancer"]
        self.assertEqual([m["metadata"]["name"] for m in external], [f"events-external-{i}" for i in range(6)])
        self.assertEqual(external[5]["spec"]["selector"], {"statefulset.kubernetes.io/pod-name": "events-broker-5"})

    def test_every_broker_setting_is_an_option_of_the_broker(self):
        """The ConfigMap's and the pod's KAFSCALE_ variables name options
        the broker reads."""
        known = {_variable(name) for name, *_ in Options.settings}
        manifests = render(everything())
        rendered = set(settings(manifests)) | {name for name in env(manifests) if name.startswith("KAFSCALE_")}
        self.assertEqual(rendered - known, set())

    def test_a_changed_setting_rolls_the_brokers(self):
        def config_hash(resource):
            return statefulset(render(resource))["spec"]["template"]["metadata"]["annotations"]["kafscale.io/config-hash"]

        self.assertEqual(config_hash(cluster()), config_hash(cluster()))
        self.assertNotEqual(config_hash(cluster()), config_hash(cluster(flush={"intervalMs": 250})))

    def test_owned_by_the_cluster_once_it_exists(self):
        resource = cluster()
        self.assertNotIn("ownerReferences", render(resource)[0]["metadata"])
        resource["metadata"]["uid"] = "8d3c1c56-0d0e-4b8e-9d5a-6f1c2f9b2a11"
        for manifest in render(resource):
            [owner] = manifest["metadata"]["ownerReferences"]
            self.assertEqual((owner["kind"], owner["name"], owner["controller"]), ("KafscaleCluster", "events", True))

    def test_what_cannot_be_rendered(self):
        cases = {
            "one per security protocol": cluster(listeners=[{"name": "a", "port": 9092}, {"name": "b", "port": 9093}]),
            "ports must differ": cluster(listeners=[{"name": "a", "port": 9644}]),
            "TLS needs spec.tls": cluster(listeners=[{"name": "a", "port": 9093, "tls": True}]),
            "advertisedHostTemplate": cluster(listeners=[
                {"name": "a", "port": 9092}, {"name": "b", "port": 9093, "type": "loadbalancer",
                                              "authentication": {"type": "scram-sha-512"}}]),
            "one must be internal": cluster(listeners=[{"name": "a", "port": 9092, "type": "loadbalancer",
                                                        "advertisedHostTemplate": "b{ordinal}.example"}]),
            "requests.cpu": cluster(autoscaling={"minReplicas": 1, "maxReplicas": 3}),
        }
        for says, resource in cases.items():
            with self.assertRaises(ClusterSpecError) as caught:
                render(resource)
            self.assertIn(says, str(caught.exception))


class PlanTests(unittest.TestCase):
    def test_nothing_exists_yet(self):
        done = plan(cluster(), [])
        self.assertEqual(done.apply, render(cluster()))
        self.assertEqual(done.delete, [])

    def test_scale_out_and_in(self):
        external = [{"name": "plain", "port": 9092},
                    {"name": "ext", "port": 9094, "type": "loadbalancer", "tls": True,
                     "advertisedHostTemplate": "b{ordinal}.example"}]
        three = cluster(replicas=3, listeners=external, tls={"secretName": "t"})
        five = cluster(replicas=5, listeners=external, tls={"secretName": "t"})
        existing = as_existing(render(three))

        out = plan(five, existing)
        self.assertEqual(statefulset(out.apply)["spec"]["replicas"], 5)
        self.assertEqual([m["metadata"]["name"] for m in out.apply if m["metadata"]["name"].startswith("events-ext-")],
                         [f"events-ext-{i}" for i in range(5)])
        self.assertEqual(out.delete, [])

        back = plan(three, as_existing(out.apply))
        self.assertEqual(statefulset(back.apply)["spec"]["replicas"], 3)
        self.assertEqual(back.delete, [("v1", "Service", "events-ext-3"), ("v1", "Service", "events-ext-4")])

        for manifest in out.apply + back.apply:
            validate_kubernetes(self, manifest)

    def test_an_autoscaler_owns_the_replicas_within_its_bounds(self):
        scaling = cluster(replicas=3, resources={"requests": {"cpu": "1"}},
                          autoscaling={"minReplicas": 2, "maxReplicas": 8})
        existing = as_existing(render(cluster(replicas=3)))
        self.assertEqual(statefulset(plan(scaling, existing).apply)["spec"]["replicas"], 3, "kept as it is")
        statefulset(existing)["spec"]["replicas"] = 7  # the autoscaler scaled out
        self.assertEqual(statefulset(plan(scaling, existing).apply)["spec"]["replicas"], 7)
        statefulset(existing)["spec"]["replicas"] = 12  # bounds narrowed under it
        self.assertEqual(statefulset(plan(scaling, existing).apply)["spec"]["replicas"], 8)
        self.assertEqual(statefulset(plan(scaling, []).apply)["spec"]["replicas"], 2, "starts at the minimum")

    def test_turning_the_autoscaler_off_deletes_it(self):
        scaling = cluster(resources={"requests": {"cpu": "1"}}, autoscaling={"minReplicas": 2, "maxReplicas": 8})
        existing = as_existing(render(scaling))
        self.assertIn(("autoscaling/v2", "HorizontalPodAutoscaler", "events-broker"), map(identity, existing))
        done = plan(cluster(replicas=4), existing)
        self.assertEqual(done.delete, [("autoscaling/v2", "HorizontalPodAutoscaler", "events-broker")])
        self.assertEqual(statefulset(done.apply)["spec"]["replicas"], 4)

    def test_a_spec_change_is_applied_and_nothing_else_deleted(self):
        existing = as_existing(render(cluster()))
        done = plan(cluster(image="kafscale/kafscale:0.2.0", flush={"intervalMs": 100}), existing)
        self.assertEqual(container(done.apply)["image"], "kafscale/kafscale:0.2.0")
        self.assertEqual(settings(done.apply)["KAFSCALE_FLUSH_INTERVAL_MS"], "100")
        self.assertEqual(done.delete, [])

    def test_objects_it_does_not_manage_are_left_alone(self):
        stranger = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "notes", "namespace": "streaming", "labels": {"kafscale.io/cluster": "events"}}}
        self.assertEqual(plan(cluster(), [stranger]).delete, [])


class StatusTests(unittest.TestCase):
    def test_from_the_statefulset(self):
        sts = {"spec": {"replicas": 3}, "status": {"readyReplicas": 2}}
        observed = clusters.status(cluster(), sts)
        self.assertEqual((observed["replicas"], observed["readyReplicas"]), (3, 2))
        self.assertEqual(observed["bootstrapServers"], "events-bootstrap.streaming.svc:9092")
        self.assertIn("app.kubernetes.io/instance=events", observed["selector"])
        self.assertEqual(clusters.status(cluster(), None)["replicas"], 0)
