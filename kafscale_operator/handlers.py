"""The kopf handlers: thin. Each reads what exists, asks the pure planning
functions what to do, does it (blocking clients run in threads) and says
in the resource's status what it did and what failed. Timers re-run every
reconciliation, which repairs drift made behind the operator's back.

Not exercised here against an API server (none runs on the machines that
test this); the planning they call is tested directly, and the topic and
user reconcilers against real brokers."""

import asyncio
import functools
from collections.abc import Mapping

import kopf

from kafscale_operator import CLUSTER_LABEL, GROUP, VERSION
from kafscale_operator import cluster as clusters
from kafscale_operator import kafka, topics, users
from kafscale_operator.crds import with_defaults
from kafscale_operator.kube import KubernetesApi
from kafscale_operator.quotas import ClientQuotas
from kafscale_operator.status import condition

RESYNC_SECONDS = 60


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)


@functools.cache
def _api():
    return KubernetesApi()


def _plain(value):
    """kopf's bodies as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _ready(patch, body, ok, reason, message):
    patch.status["conditions"] = condition(body.get("status", {}).get("conditions"), "Ready", ok, reason, message)
    patch.status["observedGeneration"] = body["metadata"].get("generation")


# -- clusters -------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, "kafscaleclusters")
@kopf.on.create(GROUP, VERSION, "kafscaleclusters")
@kopf.on.update(GROUP, VERSION, "kafscaleclusters")
@kopf.timer(GROUP, VERSION, "kafscaleclusters", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def reconcile_cluster(body, patch, namespace, name, logger, **_):
    resource = _plain(body)
    api = _api()
    existing = await asyncio.to_thread(api.owned, namespace, name)
    try:
        plan = clusters.plan(resource, existing)
    except clusters.ClusterSpecError as error:
        _ready(patch, body, False, "InvalidSpec", str(error))
        raise kopf.PermanentError(str(error)) from error
    for manifest in plan.apply:
        await asyncio.to_thread(api.apply, manifest)
    for api_version, kind, object_name in plan.delete:
        logger.info(f"deleting {kind} {object_name}, no longer wanted")
        await asyncio.to_thread(api.delete, namespace, api_version, kind, object_name)
    statefulset = await asyncio.to_thread(api.get, namespace, "apps/v1", "StatefulSet",
                                          clusters.names(name)["statefulset"])
    observed = clusters.status(resource, statefulset)
    patch.status.update(observed)
    ready = observed["readyReplicas"] >= observed["replicas"]
    _ready(patch, body, ready, "BrokersReady" if ready else "BrokersStarting",
           f"{observed['readyReplicas']} of {observed['replicas']} brokers ready")


# -- topics and users: their cluster's brokers ------------------------------

async def _client_settings(namespace, resource):
    cluster_name = (resource["metadata"].get("labels") or {}).get(CLUSTER_LABEL)
    if not cluster_name:
        raise kopf.PermanentError(f"no {CLUSTER_LABEL} label names the cluster")
    api = _api()
    cluster = await asyncio.to_thread(api.get, namespace, f"{GROUP}/{VERSION}", "KafscaleCluster", cluster_name)
    if cluster is None:
        raise kopf.TemporaryError(f"KafscaleCluster {cluster_name} does not exist", delay=30)
    spec = with_defaults("KafscaleCluster", cluster)["spec"]
    credentials = ca_pem = None
    if "operatorCredentials" in spec:
        data, _ = await asyncio.to_thread(api.secret, namespace, spec["operatorCredentials"]["secretName"])
        credentials = (data["username"].decode(), data["password"].decode())
    if "tls" in spec:
        data, _ = await asyncio.to_thread(api.secret, namespace, spec["tls"]["secretName"])
        ca_pem = data.get("ca.crt", b"").decode() or None
    try:
        return kafka.client_settings(cluster, credentials, ca_pem)
    except kafka.NoListenerForOperator as error:
        raise kopf.PermanentError(str(error)) from error


# -- topics ---------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, "kafscaletopics")
@kopf.on.create(GROUP, VERSION, "kafscaletopics")
@kopf.on.update(GROUP, VERSION, "kafscaletopics")
@kopf.timer(GROUP, VERSION, "kafscaletopics", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def reconcile_topic(body, patch, namespace, **_):
    resource = with_defaults("KafscaleTopic", _plain(body))
    settings = await _client_settings(namespace, resource)
    wanted = topics.spec_of(resource)
    managed = resource.get("status", {}).get("topicName")
    admin = topics.KafkaTopics(kafka.admin_client(settings))
    try:
        done, state = await asyncio.to_thread(admin.reconcile, wanted, managed)
    except topics.TopicError as error:
        _ready(patch, body, False, "KafkaError", str(error))
        raise kopf.TemporaryError(str(error), delay=30) from error
    if state is not None:
        patch.status.update({"topicName": state.name, "topicId": state.topic_id, "partitions": state.partitions})
    if done.problems:
        _ready(patch, body, False, "NotPossible", "; ".join(done.problems))
    else:
        _ready(patch, body, True, "Reconciled", _summary(done.actions) or "in sync")


@kopf.on.delete(GROUP, VERSION, "kafscaletopics")
async def delete_topic(body, namespace, **_):
    resource = with_defaults("KafscaleTopic", _plain(body))
    name = resource.get("status", {}).get("topicName")
    if not name:
        return  # never made
    admin = topics.KafkaTopics(kafka.admin_client(await _client_settings(namespace, resource)))
    try:
        await asyncio.to_thread(admin.delete, name, resource["spec"]["deletionPolicy"])
    except topics.TopicError as error:
        raise kopf.TemporaryError(str(error), delay=30) from error


# -- users ----------------------------------------------------------------

async def _password(namespace, resource):
    reference = resource["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    data, version = await asyncio.to_thread(_api().secret, namespace, reference["name"])
    if reference["key"] not in data:
        raise kopf.TemporaryError(f"Secret {reference['name']} has no key {reference['key']}", delay=30)
    return data[reference["key"]], version


def _user_admin(settings):
    return users.KafkaUsers(kafka.admin_client(settings), ClientQuotas.from_settings(settings))


@kopf.on.resume(GROUP, VERSION, "kafscaleusers")
@kopf.on.create(GROUP, VERSION, "kafscaleusers")
@kopf.on.update(GROUP, VERSION, "kafscaleusers")
@kopf.timer(GROUP, VERSION, "kafscaleusers", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def reconcile_user(body, patch, namespace, **_):
    resource = with_defaults("KafscaleUser", _plain(body))
    problems = users.check(resource["spec"])
    if problems:
        _ready(patch, body, False, "InvalidSpec", "; ".join(problems))
        raise kopf.PermanentError("; ".join(problems))
    settings = await _client_settings(namespace, resource)
    password, version = await _password(namespace, resource)
    wanted = users.spec_of(resource, password, version)
    admin = await asyncio.to_thread(_user_admin, settings)  # kafka-python's client connects as it is made
    try:
        done = await asyncio.to_thread(admin.reconcile, wanted, resource.get("status", {}).get("passwordSecretVersion"))
    except users.UserError as error:
        _ready(patch, body, False, "KafkaError", str(error))
        raise kopf.TemporaryError(str(error), delay=30) from error
    finally:
        await asyncio.to_thread(admin.quotas.close)
    patch.status.update({"username": wanted.name, "passwordSecretVersion": version})
    _ready(patch, body, True, "Reconciled", _summary(done) or "in sync")


@kopf.on.delete(GROUP, VERSION, "kafscaleusers")
async def delete_user(body, namespace, **_):
    resource = with_defaults("KafscaleUser", _plain(body))
    admin = await asyncio.to_thread(_user_admin, await _client_settings(namespace, resource))
    try:
        await asyncio.to_thread(admin.delete, resource["metadata"]["name"], resource["spec"]["deletionPolicy"])
    except users.UserError as error:
        raise kopf.TemporaryError(str(error), delay=30) from error
    finally:
        await asyncio.to_thread(admin.quotas.close)


def _summary(actions):
    return ", ".join(type(action).__name__ for action in actions)
