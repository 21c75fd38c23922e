"""The custom resource definitions, built here and written to
``deploy/crds/`` by ``kafscale-operator crds`` (a test checks that the files
are this module's output), so that `with_defaults` applies exactly the
defaults the API server would.

Structural schemas: every field typed, no unknown fields kept except where
Kubernetes' own types are passed through (resources, tolerations, ...)."""

import copy

from kafscale_operator import GROUP, VERSION


def _string(description, **extra):
    return {"type": "string", "description": description, **extra}


def _integer(description, **extra):
    return {"type": "integer", "description": description, **extra}


def _boolean(description, **extra):
    return {"type": "boolean", "description": description, **extra}


def _object(description, properties, required=(), **extra):
    schema = {"type": "object", "description": description, "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _array(description, items, **extra):
    return {"type": "array", "description": description, "items": items, **extra}


def _passed_through(description):
    """A Kubernetes type (core/v1) handed to the pod as it is."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def _secret_key(description, default_key):
    return _object(description, {
        "name": _string("The Secret's name, in the resource's namespace."),
        "key": _string("The key in the Secret.", default=default_key),
    }, required=["name"])


_CONDITIONS = _array("The latest observations of the resource's state.", _object("A condition.", {
    "type": _string("Ready, or what failed."),
    "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
    "reason": _string("CamelCase reason."),
    "message": _string("What happened, for people."),
    "lastTransitionTime": _string("When status last changed.", format="date-time"),
}, required=["type", "status"]))

_STATUS_COMMON = {
    "observedGeneration": _integer("The generation of the spec this status describes.", format="int64"),
    "conditions": _CONDITIONS,
}

_LISTENER = _object("A listener: a port, its security, and where clients reach it.", {
    "name": _string("Names the listener's ports in the Services.", pattern="^[a-z][a-z0-9-]{0,14}$"),
    "port": _integer("Port the brokers listen on.", minimum=1024, maximum=65535),
    "type": _string("internal: reached inside the cluster at each pod's DNS name; loadbalancer: a LoadBalancer"
                    " Service per broker, advertised at advertisedHostTemplate.",
                    enum=["internal", "loadbalancer"], default="internal"),
    "tls": _boolean("Encrypt with the certificate of spec.tls.", default=False),
    "authentication": _object("How clients authenticate on this listener (none: no field).", {
        "type": _string("SASL SCRAM, or a client certificate (tls).",
                        enum=["scram-sha-512", "scram-sha-256", "tls"]),
    }, required=["type"]),
    "advertisedHostTemplate": _string(
        "For loadbalancer listeners: the host clients are given for each broker; {ordinal} is the broker's"
        " ordinal (broker-{ordinal}.kafka.example.com). Point DNS at each broker's Service."),
}, required=["name", "port"])

_CLUSTER_SPEC = _object("The desired state of a Kafscale cluster.", {
    "replicas": _integer("Brokers (without autoscaling).", minimum=0, default=3),
    "autoscaling": _object("Scale brokers with CPU use (a HorizontalPodAutoscaler); needs resources.requests.cpu.", {
        "minReplicas": _integer("Fewest brokers.", minimum=1),
        "maxReplicas": _integer("Most brokers.", minimum=1),
        "targetCPUUtilizationPercentage": _integer("CPU use aimed at, in percent of the request.",
                                                   minimum=1, maximum=100, default=70),
    }, required=["minReplicas", "maxReplicas"],
        **{"x-kubernetes-validations": [{"rule": "self.minReplicas <= self.maxReplicas",
                                         "message": "minReplicas must not exceed maxReplicas"}]}),
    "image": _string("The broker image.", default="kafscale/kafscale:0.1.0"),
    "imagePullPolicy": _string("The image's pull policy.", enum=["Always", "IfNotPresent", "Never"],
                               default="IfNotPresent"),
    "resources": _passed_through("The broker container's resources (core/v1 ResourceRequirements)."),
    "nodeSelector": {"type": "object", "description": "Node labels the brokers must run on.",
                     "additionalProperties": {"type": "string"}},
    "tolerations": _array("Tolerations of the broker pods (core/v1 Toleration).",
                          _passed_through("A toleration.")),
    "clusterId": _string("The cluster id clients see; also names the cluster's keys in etcd"
                         " (default: the resource's name)."),
    "storage": _object("Where records are kept.", {
        "s3": _object("The S3 bucket of the cluster's segments.", {
            "bucket": _string("Bucket name."),
            "endpoint": _string("Endpoint URL (default: AWS's)."),
            "region": _string("Region (default: us-east-1)."),
            "prefix": _string("Key prefix of every object.", default=""),
            "credentialsSecret": _object(
                "A Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (none: the pod's own role, say IRSA).", {
                    "name": _string("The Secret's name."),
                    "accessKeyIdKey": _string("Key of the access key id.", default="AWS_ACCESS_KEY_ID"),
                    "secretAccessKeyKey": _string("Key of the secret key.", default="AWS_SECRET_ACCESS_KEY"),
                }, required=["name"]),
        }, required=["bucket"]),
    }, required=["s3"]),
    "etcd": _object("The etcd that holds the cluster's metadata.", {
        "endpoints": _array("Client URLs (https:// with tlsSecret).", _string("A URL."), minItems=1),
        "tlsSecret": _string("A Secret with ca.crt, tls.crt and tls.key for etcd's TLS."),
        "authSecret": _string("A Secret with username and password for etcd's authentication."),
    }, required=["endpoints"]),
    "leaseTtlSeconds": _integer("How long a crashed broker keeps its partitions.", minimum=1, default=10),
    "listeners": _array(
        "Listeners, one per security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).", _LISTENER,
        minItems=1, default=[{"name": "plain", "port": 9092, "type": "internal", "tls": False}],
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    "tls": _object("The brokers' certificate for TLS listeners.", {
        "secretName": _string("A kubernetes.io/tls Secret (tls.crt, tls.key; ca.crt to check client"
                              " certificates)."),
    }, required=["secretName"]),
    "authorization": _object("Enforce the ACLs (the KafscaleUsers' and others) kept in the metadata store.", {
        "superUsers": _array("Principals allowed everything (User:name).", _string("A principal.")),
        "allowEveryoneIfNoAclFound": _boolean("Allow what no ACL names.", default=False),
    }),
    "operatorCredentials": _object(
        "What the operator authenticates as on SASL listeners (a super user): a Secret with username and"
        " password.", {"secretName": _string("The Secret's name.")}, required=["secretName"]),
    "flush": _object("When a flush starts: the latency/cost setting.", {
        "intervalMs": _integer("0: group commit, lowest latency; N: at most every N ms, fewer PUTs.",
                               minimum=0, default=0),
        "bytes": _integer("Start a flush once this many bytes wait.", minimum=1),
    }),
    "rack": _object("Zone awareness: spread brokers over the values of a node label.", {
        "topologyKey": _string("The node label.", default="topology.kubernetes.io/zone"),
    }),
    "podDisruptionBudget": _object("Voluntary disruptions allowed at once.", {
        "maxUnavailable": _integer("Brokers that may be down at once.", minimum=0, default=1),
    }, default={}),
    "config": {"type": "object", "description": "Further broker options by name (flush-bytes: 8388608), set as"
               " KAFSCALE_ variables.", "additionalProperties": {"x-kubernetes-int-or-string": True}},
}, required=["storage", "etcd"])

_CLUSTER_STATUS = _object("What the operator did and saw.", {
    **_STATUS_COMMON,
    "replicas": _integer("Brokers asked for."),
    "readyReplicas": _integer("Brokers ready."),
    "bootstrapServers": _string("Where clients inside Kubernetes start."),
    "selector": _string("The brokers' label selector (for the scale subresource)."),
})

_CONFIG_VALUE = {"x-kubernetes-int-or-string": True}

_TOPIC_SPEC = _object("The desired state of a topic (the shape of Strimzi's KafkaTopic).", {
    "topicName": _string("The topic's name in Kafka (default: the resource's name); cannot change."),
    "partitions": _integer("Partitions; may grow, never shrink.", minimum=1, default=1),
    "config": {"type": "object", "description": "Topic configs (retention.ms: 86400000); a config not named"
               " here is reset to its default.", "additionalProperties": _CONFIG_VALUE},
    "deletionPolicy": _string("On deleting the resource: delete the topic, or leave it (orphan).",
                              enum=["delete", "orphan"], default="delete"),
})

_TOPIC_STATUS = _object("What the operator did and saw.", {
    **_STATUS_COMMON,
    "topicName": _string("The topic this resource manages."),
    "topicId": _string("The topic's id."),
    "partitions": _integer("Partitions the topic has."),
})

_ACL_RULE = _object("An ACL rule (the shape of Strimzi's AclRule).", {
    "resource": _object("What the rule is about.", {
        "type": _string("Resource type.", enum=["topic", "group", "cluster", "transactionalId"]),
        "name": _string("Resource name (not for cluster)."),
        "patternType": _string("literal, or prefixed (names starting with name).", enum=["literal", "prefixed"],
                               default="literal"),
    }, required=["type"]),
    "type": _string("allow or deny (deny wins).", enum=["allow", "deny"], default="allow"),
    "host": _string("The client host the rule applies to.", default="*"),
    "operations": _array("Operations.", _string("An operation.", enum=[
        "All", "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "DescribeConfigs",
        "AlterConfigs", "IdempotentWrite"]), minItems=1),
}, required=["resource", "operations"])

_USER_SPEC = _object("The desired state of a user (the shape of Strimzi's KafkaUser).", {
    "authentication": _object("How the user authenticates.", {
        "type": _string("The SCRAM mechanism.", enum=["scram-sha-512", "scram-sha-256"]),
        "password": _object("The password.", {
            "valueFrom": _object("Where it is.", {
                "secretKeyRef": _secret_key("A key of a Secret in the resource's namespace.", "password"),
            }, required=["secretKeyRef"]),
        }, required=["valueFrom"]),
        "iterations": _integer("SCRAM iterations.", minimum=4096, default=8192),
    }, required=["type", "password"]),
    "authorization": _object("What the user may do.", {
        "type": _string("Kafka's ACLs.", enum=["simple"], default="simple"),
        "acls": _array("The user's ACL rules; any other ACL of the user is removed.", _ACL_RULE),
    }),
    "quotas": _object("Byte rates and request share (user quotas).", {
        "producerByteRate": _integer("Produce bytes per second.", minimum=0),
        "consumerByteRate": _integer("Fetch bytes per second.", minimum=0),
        "requestPercentage": _integer("Percent of a broker thread's time.", minimum=0),
    }),
    "deletionPolicy": _string("On deleting the resource: delete the credentials, ACLs and quotas, or leave"
                              " them (orphan).", enum=["delete", "orphan"], default="delete"),
})

_USER_STATUS = _object("What the operator did and saw.", {
    **_STATUS_COMMON,
    "username": _string("The user's name (its principal is User:username)."),
    "passwordSecretVersion": _string("The Secret version whose password was last set."),
})


def _crd(kind, plural, short_names, spec, status, columns, scale=False):
    subresources = {"status": {}}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                 "labelSelectorPath": ".status.selector"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": short_names, "categories": ["kafscale"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": subresources,
                "additionalPrinterColumns": columns + [
                    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": f"A Kafscale {kind[len('Kafscale'):].lower()}.",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                    "required": ["spec"],
                }},
            }],
        },
    }


def definitions():
    """-> {file name: CRD} for deploy/crds."""
    return {
        "kafscalecluster.yaml": _crd(
            "KafscaleCluster", "kafscaleclusters", ["ksc"], _CLUSTER_SPEC, _CLUSTER_STATUS,
            [{"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
             {"name": "Ready brokers", "type": "integer", "jsonPath": ".status.readyReplicas"},
             {"name": "Bootstrap", "type": "string", "jsonPath": ".status.bootstrapServers"}],
            scale=True),
        "kafscaletopic.yaml": _crd(
            "KafscaleTopic", "kafscaletopics", ["kst"], _TOPIC_SPEC, _TOPIC_STATUS,
            [{"name": "Cluster", "type": "string", "jsonPath": ".metadata.labels.kafscale\\.io/cluster"},
             {"name": "Partitions", "type": "integer", "jsonPath": ".spec.partitions"}]),
        "kafscaleuser.yaml": _crd(
            "KafscaleUser", "kafscaleusers", ["ksu"], _USER_SPEC, _USER_STATUS,
            [{"name": "Cluster", "type": "string", "jsonPath": ".metadata.labels.kafscale\\.io/cluster"},
             {"name": "Authentication", "type": "string", "jsonPath": ".spec.authentication.type"}]),
    }


def schema_of(kind):
    """The openAPIV3Schema of ``kind`` (KafscaleCluster, ...)."""
    for crd in definitions().values():
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def with_defaults(kind, resource):
    """A copy of ``resource`` with the schema's defaults filled in, as the
    API server fills them in (for `render`, which reads a file)."""
    return _defaulted(schema_of(kind), copy.deepcopy(resource))


def _defaulted(schema, value):
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _defaulted(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        value = [_defaulted(schema["items"], item) for item in value]
    return value
