import os
import shutil
import subprocess

import yaml
from click.testing import CliRunner
from twisted.trial import unittest

from kafscale_operator.cli import main
from kafscale_operator.cluster import render
from tests.support.kubernetes import DEPLOY, validate_kubernetes


def invoke(*args, exit_code=0, test):
    result = CliRunner().invoke(main, list(args))
    test.assertEqual(result.exit_code, exit_code, result.output)
    return result


class RenderCommandTests(unittest.TestCase):
    def test_renders_the_example_cluster_and_nothing_else(self):
        example = os.path.join(DEPLOY, "examples", "cluster.yaml")
        manifests = list(yaml.safe_load_all(invoke("render", example, test=self).stdout))
        with open(example, encoding="utf-8") as f:
            [resource] = [d for d in yaml.safe_load_all(f) if d["kind"] == "KafscaleCluster"]
        self.assertEqual(manifests, render(resource))
        self.assertEqual(sorted({m["kind"] for m in manifests}),
                         ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"])
        for manifest in manifests:
            validate_kubernetes(self, manifest)

    def test_replicas_an_autoscaler_chose(self):
        path = self.mktemp()
        with open(path, "w") as f:
            yaml.safe_dump({"kind": "KafscaleCluster", "metadata": {"name": "c"}, "spec": {
                "storage": {"s3": {"bucket": "b"}}, "etcd": {"endpoints": ["http://e:2379"]},
                "resources": {"requests": {"cpu": "1"}}, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}}}, f)
        manifests = list(yaml.safe_load_all(invoke("render", path, "--replicas", "4", test=self).stdout))
        [sts] = [m for m in manifests if m["kind"] == "StatefulSet"]
        self.assertEqual(sts["spec"]["replicas"], 4)

    def test_a_spec_it_cannot_render(self):
        path = self.mktemp()
        with open(path, "w") as f:
            yaml.safe_dump({"kind": "KafscaleCluster", "metadata": {"name": "c"}, "spec": {
                "storage": {"s3": {"bucket": "b"}}, "etcd": {"endpoints": ["http://e:2379"]},
                "listeners": [{"name": "a", "port": 9093, "tls": True}]}}, f)
        result = invoke("render", path, exit_code=1, test=self)
        self.assertIn("c: listener a: TLS needs spec.tls.secretName", result.output)

    def test_a_file_without_a_cluster(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("kind: ConfigMap\nmetadata: {name: x}\n")
        self.assertIn("no KafscaleCluster", invoke("render", path, exit_code=1, test=self).output)


class DeployTests(unittest.TestCase):
    def test_kustomize_renders_a_valid_install(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise unittest.SkipTest("kubectl is not installed (Debian's kubernetes-client; .ci/run installs it)")
        output = subprocess.run([kubectl, "kustomize", DEPLOY], check=True, capture_output=True, text=True).stdout
        documents = list(yaml.safe_load_all(output))
        self.assertEqual(sorted(d["kind"] for d in documents), [
            "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CustomResourceDefinition",
            "CustomResourceDefinition", "Deployment", "Namespace", "ServiceAccount"])
        for document in documents:
            validate_kubernetes(self, document)
        [deployment] = [d for d in documents if d["kind"] == "Deployment"]
        self.assertEqual(deployment["spec"]["template"]["spec"]["containers"][0]["command"],
                         ["kafscale-operator", "run"])

    def test_the_operator_may_do_what_it_does(self):
        """Its ClusterRole covers every kind a cluster renders into."""
        with open(os.path.join(DEPLOY, "operator", "rbac.yaml"), encoding="utf-8") as f:
            [role] = [d for d in yaml.safe_load_all(f) if d["kind"] == "ClusterRole"]
        allowed = {(group, resource): set(rule["verbs"]) for rule in role["rules"]
                   for group in rule["apiGroups"] for resource in rule["resources"]}
        plural = {"ConfigMap": ("", "configmaps"), "Service": ("", "services"), "StatefulSet": ("apps", "statefulsets"),
                  "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
                  "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers")}
        for kind, key in plural.items():
            self.assertLessEqual({"get", "list", "patch", "delete"}, allowed[key], kind)
        self.assertIn("get", allowed[("", "secrets")])


class HandlersTests(unittest.TestCase):
    def test_every_resource_has_its_handlers(self):
        import kopf

        import kafscale_operator.handlers  # noqa: F401

        registry = kopf.get_default_registry()
        plurals = {}
        for handler in registry._changing.get_all_handlers() + registry._spawning.get_all_handlers():
            plurals.setdefault(handler.selector.any_name, set()).add(handler.fn.__name__)
        self.assertEqual(plurals, {
            "kafscaleclusters": {"reconcile_cluster"},
            "kafscaletopics": {"reconcile_topic", "delete_topic"},
            "kafscaleusers": {"reconcile_user", "delete_user"},
        })
