"""``kafscale-admin acls``: the cluster's ACLs, written straight into the
metadata store, so that the first ones exist before any broker runs (or
while none lets anyone change them). Brokers follow the change within a
second."""

import click

from kafscale.metadata.acls import AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType
from kafscale.metadata.acls import CLUSTER_NAME, checked_binding
from kafscale_admin.output import Column, emit, output_option, say
from kafscale_admin.stores import AdminError

RESOURCE_TYPES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.CLUSTER,
                  "transactional-id": ResourceType.TRANSACTIONAL_ID}
OPERATIONS = [o.name.lower().replace("_", "-") for o in Operation if o not in (Operation.UNKNOWN, Operation.ANY)]
COLUMNS = [Column("principal"), Column("permission"), Column("operation"), Column("host"),
           Column("resource_type", "resource type"), Column("pattern"), Column("resource")]


@click.group()
def acls():
    """Add, list and remove ACLs (enforced by brokers run with --authorizer acl)."""


def _resource_options(command):
    for option in reversed([
        click.option("--topic", help="The topic (or prefix) the ACL is about."),
        click.option("--group", help="The consumer group (or prefix) the ACL is about."),
        click.option("--transactional-id", help="The transactional id (or prefix) the ACL is about."),
        click.option("--cluster", is_flag=True, help="The ACL is about the cluster."),
        click.option("--prefixed", is_flag=True, help="Match every resource whose name starts with the name given."),
    ]):
        command = option(command)
    return command


def _resource(topic, group, transactional_id, cluster, required):
    named = [(kind, name) for kind, name in (("topic", topic), ("group", group),
                                              ("transactional-id", transactional_id)) if name is not None]
    if cluster:
        named.append(("cluster", CLUSTER_NAME))
    if len(named) > 1 or (required and not named):
        raise click.UsageError("name one resource: --topic, --group, --transactional-id or --cluster")
    return named[0] if named else (None, None)


def _row(binding):
    return {"principal": binding.principal, "permission": binding.permission.name,
            "operation": binding.operation.name, "host": binding.host,
            "resource_type": binding.resource_type.name, "pattern": binding.pattern_type.name,
            "resource": binding.resource_name}


@acls.command()
@click.option("--allow", "allowed", multiple=True, metavar="PRINCIPAL", help="Allow this principal (User:NAME).")
@click.option("--deny", "denied", multiple=True, metavar="PRINCIPAL", help="Deny this principal (User:NAME).")
@click.option("--operation", "operations", multiple=True, required=True, type=click.Choice(OPERATIONS),
              help="An operation to allow or deny (repeat for several).")
@click.option("--host", default="*", show_default=True, help="The client address it applies to.")
@_resource_options
@click.pass_obj
def add(admin, allowed, denied, operations, host, topic, group, transactional_id, cluster, prefixed):
    """Add ACLs: each principal allowed or denied each operation on the resource."""
    kind, name = _resource(topic, group, transactional_id, cluster, required=True)
    if not allowed and not denied:
        raise click.UsageError("name a principal with --allow or --deny")
    pattern = PatternType.PREFIXED if prefixed else PatternType.LITERAL
    try:
        bindings = [checked_binding(RESOURCE_TYPES[kind], name, pattern, principal, host,
                                    Operation[operation.upper().replace("-", "_")], permission)
                    for permission, principals in ((Permission.ALLOW, allowed), (Permission.DENY, denied))
                    for principal in principals for operation in operations]
    except InvalidAcl as e:
        raise AdminError(str(e)) from None

    async def work(stores):
        await stores.metadata.create_acls(bindings)

    admin.run(work)
    say(f"added {len(bindings)} ACL{'s' if len(bindings) != 1 else ''}")


def _filter(principal, host, operation, topic, group, transactional_id, cluster, prefixed):
    kind, name = _resource(topic, group, transactional_id, cluster, required=False)
    return AclFilter(
        resource_type=ResourceType.ANY if kind is None else RESOURCE_TYPES[kind], resource_name=name,
        pattern_type=(PatternType.PREFIXED if prefixed else PatternType.LITERAL) if name else PatternType.ANY,
        principal=principal, host=host,
        operation=Operation.ANY if operation is None else Operation[operation.upper().replace("-", "_")])


_filter_options = [
    click.option("--principal", help="Only ACLs of this principal."),
    click.option("--host", help="Only ACLs of this host."),
    click.option("--operation", type=click.Choice(OPERATIONS), help="Only ACLs of this operation."),
]


def _with_filter_options(command):
    for option in reversed(_filter_options):
        command = option(command)
    return _resource_options(command)


@acls.command("list")
@_with_filter_options
@output_option
@click.pass_obj
def list_acls(admin, principal, host, operation, topic, group, transactional_id, cluster, prefixed, output):
    """List the ACLs (those matching the options given)."""
    wanted = _filter(principal, host, operation, topic, group, transactional_id, cluster, prefixed)

    async def work(stores):
        return [_row(b) for b in sorted(await stores.metadata.acls()) if wanted.matches(b)]

    emit(output, admin.run(work), COLUMNS, empty="no ACLs")


@acls.command()
@_with_filter_options
@output_option
@click.pass_obj
def remove(admin, principal, host, operation, topic, group, transactional_id, cluster, prefixed, output):
    """Remove the ACLs matching the options given (at least one)."""
    if not any((principal, host, operation, topic, group, transactional_id, cluster)):
        raise click.UsageError("say which ACLs to remove (--principal, --topic, ...)")
    wanted = _filter(principal, host, operation, topic, group, transactional_id, cluster, prefixed)

    async def work(stores):
        (removed,) = await stores.metadata.delete_acls([wanted])
        return [_row(b) for b in sorted(removed)]

    emit(output, admin.run(work), COLUMNS, title="removed", empty="no ACLs matched")
