"""How the operator reaches a cluster's brokers: confluent-kafka client
settings for a KafscaleCluster (pure), and admin clients made from them."""

from confluent_kafka.admin import AdminClient

from kafscale_operator.cluster import bootstrap_servers, listener_protocol
from kafscale_operator.crds import with_defaults


class NoListenerForOperator(ValueError):
    """Every internal listener wants a client certificate."""


def client_settings(cluster, credentials=None, ca_pem=None):
    """confluent-kafka settings for the operator on ``cluster`` (a
    KafscaleCluster): its first internal listener that takes a password or
    nothing; ``credentials`` (username, password) for SASL, ``ca_pem`` (the
    TLS Secret's ca.crt) to check the brokers' certificate."""
    cluster = with_defaults("KafscaleCluster", cluster)
    cluster["metadata"].setdefault("namespace", "default")
    usable = [listener for listener in cluster["spec"]["listeners"]
              if listener["type"] == "internal" and listener.get("authentication", {}).get("type") != "tls"]
    if not usable:
        raise NoListenerForOperator("the operator needs an internal listener without client certificates")
    listener = usable[0]
    protocol = listener_protocol(listener)
    settings = {"bootstrap.servers": bootstrap_servers(cluster)[listener["name"]], "security.protocol": protocol}
    if protocol.startswith("SASL"):
        if credentials is None:
            raise NoListenerForOperator(f"listener {listener['name']} needs spec.operatorCredentials")
        settings.update({"sasl.mechanism": listener["authentication"]["type"].upper(),
                         "sasl.username": credentials[0], "sasl.password": credentials[1]})
    if protocol.endswith("SSL") and ca_pem:
        settings["ssl.ca.pem"] = ca_pem
    return settings


def admin_client(settings):
    return AdminClient(dict(settings))
