import copy
import os

import yaml
from twisted.trial import unittest

from kafscale_operator import crds
from kafscale_operator.cli import crds_text
from tests.support.kubernetes import DEPLOY, cluster, everything, validate_kubernetes, validate_resource


def _schemas(schema, path="$"):
    """Every schema node of a structural schema, with where it is."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _schemas(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _schemas(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _schemas(schema["additionalProperties"], f"{path}{{}}")


class DefinitionsTests(unittest.TestCase):
    def test_each_is_valid_for_kubernetes(self):
        for definition in crds.definitions().values():
            validate_kubernetes(self, definition)

    def test_deploy_holds_exactly_the_definitions(self):
        for name, definition in crds.definitions().items():
            with open(os.path.join(DEPLOY, "crds", name), encoding="utf-8") as f:
                self.assertEqual(f.read(), crds_text(definition),
                                 f"deploy/crds/{name} is stale: run `kafscale-operator crds deploy/crds`")

    def test_schemas_are_structural(self):
        """What the API server demands of a structural schema: every node
        typed (or int-or-string), defaults of the node's own type, no
        properties beside additionalProperties; and a status subresource."""
        kinds = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}
        for definition in crds.definitions().values():
            version = definition["spec"]["versions"][0]
            self.assertIn("status", version["subresources"])
            for path, schema in _schemas(version["schema"]["openAPIV3Schema"]):
                if schema.get("x-kubernetes-int-or-string"):
                    continue
                self.assertIn(schema.get("type"), kinds, path)
                if "default" in schema:
                    self.assertIsInstance(schema["default"], kinds[schema["type"]], path)
                self.assertFalse("properties" in schema and "additionalProperties" in schema, path)

    def test_cluster_scale_subresource_points_at_status(self):
        version = crds.definitions()["kafscalecluster.yaml"]["spec"]["versions"][0]
        scale = version["subresources"]["scale"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        self.assertIn(scale["statusReplicasPath"].split(".")[-1], status)
        self.assertIn(scale["labelSelectorPath"].split(".")[-1], status)


class ResourceValidationTests(unittest.TestCase):
    def test_examples_are_valid(self):
        with open(os.path.join(DEPLOY, "examples", "cluster.yaml"), encoding="utf-8") as f:
            documents = list(yaml.safe_load_all(f))
        kinds = sorted(d["kind"] for d in documents)
        self.assertEqual(kinds, ["KafscaleCluster", "KafscaleTopic", "KafscaleUser", "Secret"])
        for document in documents:
            if document["kind"] == "Secret":
                validate_kubernetes(self, document)
            else:
                validate_resource(self, document)

    def test_a_cluster_using_every_field_is_valid(self):
        validate_resource(self, everything())

    def test_unknown_fields_and_wrong_values_are_refused(self):
        """The validation is strict enough to fail."""
        typo = cluster(replica=3)
        wrong = cluster(listeners=[{"name": "plain", "port": 80}])
        for resource in (typo, wrong):
            self.assertRaises(self.failureException, validate_resource, self, resource)


class DefaultsTests(unittest.TestCase):
    def test_defaults_fill_what_is_missing_and_keep_what_is_given(self):
        given = cluster(listeners=[{"name": "tls", "port": 9093, "tls": True}])
        defaulted = crds.with_defaults("KafscaleCluster", given)
        self.assertEqual(defaulted["spec"]["replicas"], 3)
        self.assertEqual(defaulted["spec"]["podDisruptionBudget"], {"maxUnavailable": 1})
        self.assertEqual(defaulted["spec"]["listeners"], [{"name": "tls", "port": 9093, "tls": True, "type": "internal"}])
        self.assertEqual(defaulted["spec"]["storage"]["s3"]["prefix"], "")
        self.assertNotIn("autoscaling", defaulted["spec"])
        self.assertEqual(given, cluster(listeners=[{"name": "tls", "port": 9093, "tls": True}]), "changed in place")

    def test_list_defaults_are_defaulted_themselves(self):
        defaulted = crds.with_defaults("KafscaleCluster", cluster())
        self.assertEqual(defaulted["spec"]["listeners"],
                         [{"name": "plain", "port": 9092, "type": "internal", "tls": False}])

    def test_user_acl_defaults(self):
        user = {"kind": "KafscaleUser", "metadata": {"name": "u"}, "spec": {
            "authentication": {"type": "scram-sha-512", "password": {"valueFrom": {"secretKeyRef": {"name": "s"}}}},
            "authorization": {"acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Read"]}]}}}
        defaulted = crds.with_defaults("KafscaleUser", copy.deepcopy(user))
        rule = defaulted["spec"]["authorization"]["acls"][0]
        self.assertEqual((rule["type"], rule["host"], rule["resource"]["patternType"]), ("allow", "*", "literal"))
        self.assertEqual(defaulted["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]["key"], "password")
        self.assertEqual(defaulted["spec"]["deletionPolicy"], "delete")
