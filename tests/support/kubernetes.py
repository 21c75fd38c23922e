"""What the operator's tests share: strict validation against Kubernetes'
schemas (kubernetes-validate) and against our own CRDs, and cluster
resources to render."""

import copy
import os

import jsonschema
import kubernetes_validate.utils as kubernetes_validate

from kafscale_operator.crds import schema_of

# The oldest Kubernetes the manifests must be valid for (the pod-index
# label, CEL validation rules and autoscaling/v2 are all there), and the
# newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31", kubernetes_validate.latest_version())

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy")


def validate_kubernetes(test, manifest):
    """Fail ``test`` unless ``manifest`` is valid, unknown fields refused,
    for every version of KUBERNETES_VERSIONS."""
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            test.fail(f"{manifest['kind']} {manifest['metadata'].get('name')} is not valid for Kubernetes {version}:"
                      f" {error.caught.message} at {list(error.caught.path)}")


def strict_schema(schema):
    """An openAPIV3Schema as a JSON schema that refuses unknown fields where
    the API server would drop them."""
    schema = copy.deepcopy(schema)
    _close(schema)
    return schema


def _close(schema):
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
        for sub in schema["properties"].values():
            _close(sub)
    if isinstance(schema.get("items"), dict):
        _close(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        _close(schema["additionalProperties"])
    if schema.get("x-kubernetes-int-or-string"):
        schema["type"] = ["integer", "string"]


def validate_resource(test, resource):
    """Fail ``test`` unless ``resource`` (KafscaleCluster, ...) is valid
    for its CRD, unknown fields refused."""
    schema = strict_schema(schema_of(resource["kind"]))
    schema["properties"]["metadata"] = {"type": "object"}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(resource), key=str)
    if errors:
        test.fail(f"{resource['kind']} {resource['metadata']['name']}: {errors[0].message} at {list(errors[0].path)}")


def cluster(name="events", namespace="streaming", **spec):
    """A KafscaleCluster with the spec fields every cluster needs, and ``spec``."""
    return {
        "apiVersion": "kafscale.io/v1alpha1", "kind": "KafscaleCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storage": {"s3": {"bucket": "records"}}, "etcd": {"endpoints": ["http://etcd:2379"]}, **spec},
    }


def everything():
    """A cluster using every field."""
    return cluster(
        replicas=4,
        autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60},
        image="registry.example/kafscale:1",
        imagePullPolicy="Always",
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        nodeSelector={"pool": "kafka"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}],
        clusterId="events-prod",
        storage={"s3": {"bucket": "records", "endpoint": "https://s3.example", "region": "eu-west-1",
                        "prefix": "events", "credentialsSecret": {"name": "s3-keys"}}},
        etcd={"endpoints": ["https://etcd-0:2379", "https://etcd-1:2379"], "tlsSecret": "etcd-tls",
              "authSecret": "etcd-auth"},
        leaseTtlSeconds=6,
        listeners=[
            {"name": "internal", "port": 9092, "type": "internal", "tls": True,
             "authentication": {"type": "scram-sha-512"}},
            {"name": "mtls", "port": 9093, "type": "internal", "authentication": {"type": "tls"}},
            {"name": "external", "port": 9094, "type": "loadbalancer",
             "authentication": {"type": "scram-sha-256"}, "advertisedHostTemplate": "b{ordinal}.kafka.example"},
        ],
        tls={"secretName": "broker-tls"},
        authorization={"superUsers": ["User:admin", "User:operator"], "allowEveryoneIfNoAclFound": False},
        operatorCredentials={"secretName": "operator-scram"},
        flush={"intervalMs": 250, "bytes": 4194304},
        rack={"topologyKey": "topology.kubernetes.io/zone"},
        podDisruptionBudget={"maxUnavailable": 2},
        config={"fetch-max-wait-ms": 10000, "log-level": "debug"},
    )
