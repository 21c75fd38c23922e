"""The Kubernetes API, as narrow as the handlers need it: apply, list what
a cluster owns, read, delete, read a Secret. Blocking (the official
client); the handlers call it in a thread.

Not exercised here: no API server runs on the machines that test this."""

import base64

from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import NotFoundError

from kafscale_operator import CLUSTER_LABEL, MANAGED_BY
from kafscale_operator.cluster import KINDS


class KubernetesApi:
    def __init__(self):
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self._client = dynamic.DynamicClient(client.ApiClient())

    def _resource(self, api_version, kind):
        return self._client.resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest):
        """Server-side apply: fields this operator set before and no longer
        sets are removed, others' fields are left alone."""
        self._client.server_side_apply(
            self._resource(manifest["apiVersion"], manifest["kind"]), body=manifest,
            namespace=manifest["metadata"]["namespace"], field_manager=MANAGED_BY, force_conflicts=True)

    def owned(self, namespace, cluster):
        """-> the manifests of every object labelled as ``cluster``'s."""
        found = []
        for api_version, kind in KINDS:
            listing = self._client.get(self._resource(api_version, kind), namespace=namespace,
                                       label_selector=f"{CLUSTER_LABEL}={cluster}")
            for item in listing.to_dict()["items"]:
                found.append({**item, "apiVersion": api_version, "kind": kind})
        return found

    def get(self, namespace, api_version, kind, name):
        try:
            return self._client.get(self._resource(api_version, kind), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def delete(self, namespace, api_version, kind, name):
        try:
            self._client.delete(self._resource(api_version, kind), name=name, namespace=namespace)
        except NotFoundError:
            pass

    def secret(self, namespace, name):
        """-> ({key: bytes}, version): the Secret's data and a string that
        changes whenever it does."""
        secret = self.get(namespace, "v1", "Secret", name)
        if secret is None:
            raise LookupError(f"Secret {namespace}/{name} does not exist")
        data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
        return data, f"{secret['metadata']['uid']}/{secret['metadata']['resourceVersion']}"
