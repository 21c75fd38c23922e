"""``kafscale-operator``: run the operator, or print what it would apply."""

import sys

import click
import yaml

from kafscale import __version__
from kafscale_operator import crds
from kafscale_operator.cluster import ClusterSpecError, render as render_cluster


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="kafscale-operator")
def main():
    """The Kafscale operator: KafscaleCluster, KafscaleTopic and KafscaleUser
    resources made real."""


@main.command()
@click.option("--namespace", "-n", "namespaces", multiple=True, envvar="KAFSCALE_OPERATOR_NAMESPACES",
              help="Watch these namespaces only (default: all; the RBAC in deploy/ allows all).")
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", help="kopf's liveness endpoint.")
def run(namespaces, liveness):
    """Run the operator (kopf) against the cluster it finds: in a pod, its
    service account; elsewhere, the kubeconfig."""
    import kopf

    import kafscale_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(clusterwide=not namespaces, namespaces=list(namespaces), liveness_endpoint=liveness,
             standalone=True)


@main.command()
@click.argument("cluster_file", type=click.File("r"))
@click.option("--replicas", type=int, help="The replicas an autoscaler chose (default: the minimum).")
def render(cluster_file, replicas):
    """Print the manifests a KafscaleCluster in CLUSTER_FILE becomes (for
    GitOps and review). Documents of other kinds in the file are left out."""
    documents = [d for d in yaml.safe_load_all(cluster_file) if d and d.get("kind") == "KafscaleCluster"]
    if not documents:
        raise click.ClickException("no KafscaleCluster in the file")
    manifests = []
    for document in documents:
        try:
            manifests += render_cluster(document, current_replicas=replicas)
        except ClusterSpecError as error:
            raise click.ClickException(f"{document['metadata']['name']}: {error}") from None
    yaml.safe_dump_all(manifests, sys.stdout, sort_keys=False)


@main.command("crds")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
def write_crds(directory):
    """Write the CustomResourceDefinitions into DIRECTORY (deploy/crds)."""
    for name, definition in crds.definitions().items():
        with open(f"{directory}/{name}", "w", encoding="utf-8") as f:
            f.write(crds_text(definition))


def crds_text(definition):
    return "# Written by `kafscale-operator crds deploy/crds`: edit kafscale_operator/crds.py instead.\n" + \
        yaml.safe_dump(definition, sort_keys=False, width=120)
