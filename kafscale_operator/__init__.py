"""``kafscale-operator``: Kafscale on Kubernetes. Custom resources for
clusters, topics and users (`crds`), what a cluster becomes in Kubernetes
objects (`cluster`), topics and users reconciled through the Kafka Admin API
(`topics`, `users`), and the kopf handlers that drive them (`handlers`).

The planning functions are pure: (spec, what exists) -> what to do. Only
`kube`, `kafka` and `handlers` talk to anything."""

GROUP = "kafscale.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CLUSTER_LABEL = "kafscale.io/cluster"
MANAGED_BY = "kafscale-operator"
