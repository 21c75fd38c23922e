"""What a KafscaleCluster becomes in Kubernetes objects.

`render` is a pure function of the cluster resource (and the replica count
an autoscaler chose); `plan` compares that with the objects that exist and
says what to apply and what to delete.

Brokers run as a StatefulSet, though they keep nothing on disk (no volumes):
what they need from it is a stable identity. Each broker's node id is its
ordinal (the pod's ``apps.kubernetes.io/pod-index`` label), so a restarted
broker comes back under its own id (it waits out its previous life's lease
in etcd, kafscale.etcd.cluster) and the rendezvous hash gives it back the
partitions it had, instead of a fresh id from etcd shuffling them; and each
broker has a stable name, so the headless Service gives it a DNS name to
advertise and a per-broker Service can select it for clients outside the
cluster. A Deployment's pods have neither. Pods start and stop in parallel
(no ordering is needed), and scaling in removes the highest ordinals, whose
partitions the others take over when the broker hands them over on SIGTERM.
"""

import hashlib
import json
from dataclasses import dataclass, field

from kafscale_operator import API_VERSION, CLUSTER_LABEL, MANAGED_BY
from kafscale_operator.crds import with_defaults

KAFKA_CONTAINER = "broker"
ADMIN_PORT = 9644
TLS_DIR = "/etc/kafscale/tls"
ETCD_TLS_DIR = "/etc/kafscale/etcd-tls"
# Seconds a broker has to commit what it accepted and hand its partitions
# over after SIGTERM (it needs a few).
TERMINATION_GRACE_SECONDS = 60

# (tls, authenticated) -> Kafka's security protocol, which names the listener
_PROTOCOLS = {
    (False, False): "PLAINTEXT",
    (True, False): "SSL",
    (False, True): "SASL_PLAINTEXT",
    (True, True): "SASL_SSL",
}

# The kinds render() makes, in the order they are applied.
KINDS = [
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
]


class ClusterSpecError(ValueError):
    """The spec asks for something that cannot be rendered."""


@dataclass(frozen=True)
class Plan:
    apply: list = field(default_factory=list)  # manifests, in KINDS order
    delete: list = field(default_factory=list)  # (apiVersion, kind, name) owned objects no longer wanted


def names(name):
    """The names of a cluster's objects."""
    return {
        "statefulset": f"{name}-broker",
        "headless": f"{name}-brokers",
        "bootstrap": f"{name}-bootstrap",
        "config": f"{name}-config",
    }


def selector_labels(name):
    return {"app.kubernetes.io/name": "kafscale", "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": "broker"}


def _labels(name):
    return {**selector_labels(name), "app.kubernetes.io/managed-by": MANAGED_BY, CLUSTER_LABEL: name}


def _meta(cluster, name):
    return {"name": name, "namespace": cluster["metadata"]["namespace"], "labels": _labels(cluster["metadata"]["name"])}


def listener_protocol(listener):
    authenticated = listener.get("authentication", {}).get("type") in ("scram-sha-512", "scram-sha-256")
    tls = listener.get("tls", False) or listener.get("authentication", {}).get("type") == "tls"
    return _PROTOCOLS[(tls, authenticated)]


def bootstrap_servers(cluster):
    """host:port of the bootstrap Service for each listener name."""
    meta = cluster["metadata"]
    host = f"{names(meta['name'])['bootstrap']}.{meta['namespace']}.svc"
    return {listener["name"]: f"{host}:{listener['port']}" for listener in cluster["spec"]["listeners"]}


def check(spec):
    """Raise ClusterSpecError for what the schema cannot say."""
    listeners = spec["listeners"]
    protocols = [listener_protocol(listener) for listener in listeners]
    if len(set(protocols)) != len(protocols):
        raise ClusterSpecError("listeners: at most one per security protocol (the protocol names the listener)")
    if len({listener["port"] for listener in listeners} | {ADMIN_PORT}) != len(listeners) + 1:
        raise ClusterSpecError(f"listeners: ports must differ from each other and from {ADMIN_PORT} (admin)")
    for listener in listeners:
        uses_tls = listener.get("tls") or listener.get("authentication", {}).get("type") == "tls"
        if uses_tls and "tls" not in spec:
            raise ClusterSpecError(f"listener {listener['name']}: TLS needs spec.tls.secretName")
        if listener["type"] == "loadbalancer" and "{ordinal}" not in listener.get("advertisedHostTemplate", ""):
            raise ClusterSpecError(f"listener {listener['name']}: a loadbalancer listener needs an"
                                   " advertisedHostTemplate naming {ordinal}")
    if "internal" not in [listener["type"] for listener in listeners]:
        raise ClusterSpecError("listeners: one must be internal (the brokers and the operator use it)")
    if "autoscaling" in spec and not (spec.get("resources") or {}).get("requests", {}).get("cpu"):
        raise ClusterSpecError("autoscaling on CPU needs resources.requests.cpu")


def _broker_settings(cluster):
    """The KAFSCALE_ variables every broker shares (the ConfigMap)."""
    spec, meta = cluster["spec"], cluster["metadata"]
    s3 = spec["storage"]["s3"]
    settings = {
        "KAFSCALE_CLUSTER_ID": spec.get("clusterId", meta["name"]),
        "KAFSCALE_ETCD": ",".join(spec["etcd"]["endpoints"]),
        "KAFSCALE_LEASE_TTL": str(spec["leaseTtlSeconds"]),
        "KAFSCALE_S3_BUCKET": s3["bucket"],
        "KAFSCALE_S3_PREFIX": s3.get("prefix", ""),
        # probes come from the kubelet, not from inside the pod
        "KAFSCALE_ADMIN_LISTEN": f"tcp:{ADMIN_PORT}",
        # nothing is kept there with etcd and S3; the root is read-only
        "KAFSCALE_DATA_DIR": "/tmp/kafscale",
        # topics are the KafscaleTopics; a typo must not make one
        "KAFSCALE_AUTO_CREATE_TOPICS": "false",
    }
    for key, option in (("endpoint", "S3_ENDPOINT"), ("region", "S3_REGION")):
        if key in s3:
            settings[f"KAFSCALE_{option}"] = s3[key]
    flush = spec.get("flush", {})
    if "intervalMs" in flush:
        settings["KAFSCALE_FLUSH_INTERVAL_MS"] = str(flush["intervalMs"])
    if "bytes" in flush:
        settings["KAFSCALE_FLUSH_BYTES"] = str(flush["bytes"])
    if _simple_listener(spec):
        settings["KAFSCALE_LISTEN"] = f"tcp:{spec['listeners'][0]['port']}"
    else:
        settings["KAFSCALE_LISTENERS"] = ",".join(
            f"{listener_protocol(listener)}://0.0.0.0:{listener['port']}" for listener in spec["listeners"])
        mechanisms = sorted({listener["authentication"]["type"].upper() for listener in spec["listeners"]
                             if listener.get("authentication", {}).get("type", "tls") != "tls"}, reverse=True)
        if mechanisms:
            settings["KAFSCALE_SASL_MECHANISMS"] = ",".join(mechanisms)
    if "tls" in spec:
        settings["KAFSCALE_TLS_CERT"] = f"{TLS_DIR}/tls.crt"
        settings["KAFSCALE_TLS_KEY"] = f"{TLS_DIR}/tls.key"
        if any(listener.get("authentication", {}).get("type") == "tls" for listener in spec["listeners"]):
            settings["KAFSCALE_TLS_CA"] = f"{TLS_DIR}/ca.crt"
            settings["KAFSCALE_TLS_CLIENT_AUTH"] = "required"
    authorization = spec.get("authorization")
    if authorization is not None:
        # Kafka's StandardAuthorizer: the ACLs kept in the metadata store
        settings["KAFSCALE_AUTHORIZER"] = "acl"
        if authorization.get("superUsers"):
            settings["KAFSCALE_SUPER_USERS"] = ";".join(authorization["superUsers"])
        settings["KAFSCALE_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] = str(authorization["allowEveryoneIfNoAclFound"]).lower()
    if "tlsSecret" in spec["etcd"]:
        settings["KAFSCALE_ETCD_CA"] = f"{ETCD_TLS_DIR}/ca.crt"
        settings["KAFSCALE_ETCD_CERT"] = f"{ETCD_TLS_DIR}/tls.crt"
        settings["KAFSCALE_ETCD_KEY"] = f"{ETCD_TLS_DIR}/tls.key"
    for option, value in sorted(spec.get("config", {}).items()):
        settings["KAFSCALE_" + option.upper().replace("-", "_").replace(".", "_")] = str(value)
    return settings


def _simple_listener(spec):
    """One internal PLAINTEXT listener: today's --listen/--advertise."""
    listeners = spec["listeners"]
    return len(listeners) == 1 and listeners[0]["type"] == "internal" and listener_protocol(listeners[0]) == "PLAINTEXT"


def _advertised(cluster, listener):
    meta = cluster["metadata"]
    if listener["type"] == "internal":
        host = f"$(POD_NAME).{names(meta['name'])['headless']}.$(POD_NAMESPACE).svc"
    else:
        host = listener["advertisedHostTemplate"].replace("{ordinal}", "$(POD_INDEX)")
    return f"{host}:{listener['port']}"


def _per_pod_env(cluster):
    """Variables that differ between brokers, or come from Secrets."""
    spec = cluster["spec"]
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        {"name": "KAFSCALE_NODE_ID", "value": "$(POD_INDEX)"},
    ]
    if _simple_listener(spec):
        env.append({"name": "KAFSCALE_ADVERTISE", "value": _advertised(cluster, spec["listeners"][0])})
    else:
        env.append({"name": "KAFSCALE_ADVERTISED_LISTENERS", "value": ",".join(
            f"{listener_protocol(listener)}://{_advertised(cluster, listener)}" for listener in spec["listeners"])})
    credentials = spec["storage"]["s3"].get("credentialsSecret")
    if credentials:
        for variable, key in (("AWS_ACCESS_KEY_ID", "accessKeyIdKey"), ("AWS_SECRET_ACCESS_KEY", "secretAccessKeyKey")):
            env.append({"name": variable, "valueFrom": {"secretKeyRef": {
                "name": credentials["name"], "key": credentials[key]}}})
    if "authSecret" in spec["etcd"]:
        for variable, key in (("KAFSCALE_ETCD_USER", "username"), ("KAFSCALE_ETCD_PASSWORD", "password")):
            env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": spec["etcd"]["authSecret"],
                                                                         "key": key}}})
    return env


def _config_map(cluster, settings):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(cluster, names(cluster["metadata"]["name"])["config"]), "data": settings}


def _ports(spec):
    return [{"name": listener["name"], "port": listener["port"], "targetPort": listener["port"], "protocol": "TCP"}
            for listener in spec["listeners"]]


def _services(cluster):
    spec, name = cluster["spec"], cluster["metadata"]["name"]
    own = names(name)
    internal_ports = _ports({"listeners": [listener for listener in spec["listeners"]
                                           if listener["type"] == "internal"]})
    services = [
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, own["headless"]),
         # each broker's DNS name, which it advertises; published before the
         # broker is ready, so brokers and clients resolve one that starts
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector_labels(name),
                  "ports": internal_ports}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, own["bootstrap"]),
         "spec": {"type": "ClusterIP", "selector": selector_labels(name), "ports": internal_ports}},
    ]
    for listener in spec["listeners"]:
        if listener["type"] != "loadbalancer":
            continue
        for ordinal in range(_broker_addresses(spec)):
            pod = f"{own['statefulset']}-{ordinal}"
            services.append({
                "apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, f"{name}-{listener['name']}-{ordinal}"),
                "spec": {"type": "LoadBalancer", "selector": {"statefulset.kubernetes.io/pod-name": pod},
                         "ports": _ports({"listeners": [listener]})}})
    return services


def _broker_addresses(spec):
    """How many brokers may exist: per-broker Services are made for each."""
    if "autoscaling" in spec:
        return spec["autoscaling"]["maxReplicas"]
    return spec["replicas"]


def _statefulset(cluster, settings, replicas):
    spec, name = cluster["spec"], cluster["metadata"]["name"]
    own = names(name)
    container = {
        "name": KAFKA_CONTAINER,
        "image": spec["image"],
        "imagePullPolicy": spec["imagePullPolicy"],
        # no pid file: the container is the broker's only life
        "command": ["twistd", "--nodaemon", "--pidfile=", "kafscale"],
        "envFrom": [{"configMapRef": {"name": own["config"]}}],
        "env": _per_pod_env(cluster),
        "ports": [{"name": listener["name"], "containerPort": listener["port"], "protocol": "TCP"}
                  for listener in spec["listeners"]] + [{"name": "admin", "containerPort": ADMIN_PORT,
                                                         "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 5,
                           "timeoutSeconds": 5, "failureThreshold": 2},
        # loading state and waiting out a previous life's lease take a while
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 2,
                         "failureThreshold": 60},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.get("resources"):
        container["resources"] = spec["resources"]
    volumes = [{"name": "tmp", "emptyDir": {}}]
    if "tls" in spec:
        volumes.append({"name": "tls", "secret": {"secretName": spec["tls"]["secretName"]}})
        container["volumeMounts"].append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    if "tlsSecret" in spec["etcd"]:
        volumes.append({"name": "etcd-tls", "secret": {"secretName": spec["etcd"]["tlsSecret"]}})
        container["volumeMounts"].append({"name": "etcd-tls", "mountPath": ETCD_TLS_DIR, "readOnly": True})
    pod_spec = {
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if spec.get("nodeSelector"):
        pod_spec["nodeSelector"] = spec["nodeSelector"]
    if spec.get("tolerations"):
        pod_spec["tolerations"] = spec["tolerations"]
    if "rack" in spec:
        # a zone lost takes only its share of the brokers; the others take
        # its partitions over within a lease TTL
        pod_spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": spec["rack"]["topologyKey"], "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(name)}}]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(cluster, own["statefulset"]),
        "spec": {
            "serviceName": own["headless"],
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {"labels": _labels(name),
                             # a changed ConfigMap rolls the brokers, which read it only at start
                             "annotations": {"kafscale.io/config-hash": _digest(settings)}},
                "spec": pod_spec,
            },
        },
    }


def _digest(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _pod_disruption_budget(cluster):
    spec, name = cluster["spec"], cluster["metadata"]["name"]
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(cluster, names(name)["statefulset"]),
            "spec": {"maxUnavailable": spec["podDisruptionBudget"]["maxUnavailable"],
                     "selector": {"matchLabels": selector_labels(name)}}}


def _autoscaler(cluster):
    spec, name = cluster["spec"], cluster["metadata"]["name"]
    scaling = spec["autoscaling"]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(cluster, names(name)["statefulset"]),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                        "name": names(name)["statefulset"]},
                     "minReplicas": scaling["minReplicas"], "maxReplicas": scaling["maxReplicas"],
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": scaling["targetCPUUtilizationPercentage"]}}}]}}


def render(cluster, current_replicas=None):
    """The manifests for ``cluster`` (a KafscaleCluster, defaults applied
    or not), in the order to apply them. ``current_replicas``: the
    StatefulSet's replicas now, which an autoscaler owns (kept within its
    bounds). Raises ClusterSpecError."""
    cluster = with_defaults("KafscaleCluster", cluster)
    cluster["metadata"].setdefault("namespace", "default")
    spec = cluster["spec"]
    check(spec)
    replicas = spec["replicas"]
    if "autoscaling" in spec:
        low, high = spec["autoscaling"]["minReplicas"], spec["autoscaling"]["maxReplicas"]
        replicas = low if current_replicas is None else min(max(current_replicas, low), high)
    settings = _broker_settings(cluster)
    manifests = [_config_map(cluster, settings), *_services(cluster), _statefulset(cluster, settings, replicas),
                 _pod_disruption_budget(cluster)]
    if "autoscaling" in spec:
        manifests.append(_autoscaler(cluster))
    owner = _owner_reference(cluster)
    if owner:
        for manifest in manifests:
            manifest["metadata"]["ownerReferences"] = [owner]
    return manifests


def _owner_reference(cluster):
    """Deleting the cluster deletes its objects (Kubernetes' garbage
    collector); a cluster read from a file has no uid yet."""
    uid = cluster["metadata"].get("uid")
    if not uid:
        return None
    return {"apiVersion": API_VERSION, "kind": "KafscaleCluster", "name": cluster["metadata"]["name"], "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def identity(manifest):
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


def plan(cluster, existing):
    """What to do to make the objects that exist (``existing``: manifests
    labelled as this cluster's, as read from the API server) match
    ``cluster``: apply every rendered object (server-side apply changes
    only what differs), delete owned objects it no longer renders (the
    per-broker Services above a new count, an autoscaler turned off)."""
    current = next((m["spec"].get("replicas") for m in existing
                    if m["kind"] == "StatefulSet" and m["metadata"]["name"] == names(cluster["metadata"]["name"])["statefulset"]),
                   None)
    wanted = render(cluster, current_replicas=current)
    keep = {identity(m) for m in wanted}
    delete = [identity(m) for m in existing
              if identity(m) not in keep and (m["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY]
    return Plan(apply=wanted, delete=sorted(delete))


def status(cluster, statefulset):
    """The cluster's status fields from its StatefulSet as it is (None:
    not made yet)."""
    name = cluster["metadata"]["name"]
    observed = (statefulset or {}).get("status", {})
    wanted = (statefulset or {}).get("spec", {}).get("replicas", 0)
    ready = observed.get("readyReplicas", 0)
    return {
        "replicas": wanted,
        "readyReplicas": ready,
        "selector": ",".join(f"{k}={v}" for k, v in selector_labels(name).items()),
        "bootstrapServers": ",".join(bootstrap_servers(with_defaults("KafscaleCluster", cluster)).values()),
    }
