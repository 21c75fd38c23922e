"""How ``kafscale-admin`` reaches a cluster: it opens the brokers' own
metadata and object stores, under a reactor of its own, so it works whether
or not a broker is running.

A command's work is a coroutine function taking :class:`Stores`; a runner
runs it to completion. The command line's runner is :func:`react_runner`;
tests run the same work on the reactor they already have.
"""

import os
from dataclasses import dataclass

import click
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.task import react
from twisted.python.failure import Failure

from kafscale import stores
from kafscale.etcd import layout
from kafscale.etcd.client import EtcdError
from kafscale.etcd.interfaces import IOwnershipStore
from kafscale.metadata.interfaces import MetadataError
from kafscale.storage.interfaces import ObjectStoreError


class AdminError(click.ClickException):
    """A failure the user can act on: printed as one line, exit status 1."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where the cluster's stores are, named as the broker's options name them."""

    data_dir: str = "kafscale-data"
    etcd: str | None = None
    cluster_id: str = "kafscale"
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_prefix: str = ""
    timeout: float = 5.0
    etcd_security: stores.EtcdSecurity = stores.EtcdSecurity()

    @classmethod
    def from_options(cls, etcd_ca=None, etcd_cert=None, etcd_key=None, etcd_user=None, etcd_password=None,
                     **options):
        """The Location the command line's options (its parameters' names) describe."""
        return cls(**options, etcd_security=stores.EtcdSecurity(etcd_ca, etcd_cert, etcd_key, etcd_user,
                                                                 etcd_password))

    @property
    def metadata_path(self):
        return stores.embedded_metadata_path(self.data_dir)

    def describe_metadata(self):
        if self.etcd:
            return f"etcd {self.etcd} (cluster {self.cluster_id})"
        return f"embedded {self.metadata_path}"

    def describe_objects(self):
        if self.s3_bucket:
            where = f"s3://{self.s3_bucket}/{self.s3_prefix}"
            return f"{where} at {self.s3_endpoint}" if self.s3_endpoint else where
        return f"directory {stores.objects_dir(self.data_dir)}"

    def metadata_store(self, reactor, create=False):
        """The metadata store; an embedded one must exist unless ``create``."""
        if not create and not self.etcd and not os.path.exists(self.metadata_path):
            raise AdminError(f"no metadata store at {self.metadata_path}: pass the broker's --data-dir, or --etcd")
        # No watches: a command reads what it needs when it needs it.
        try:
            return stores.metadata_store(data_dir=self.data_dir, etcd=self.etcd, cluster_id=self.cluster_id,
                                         timeout=self.timeout, watched=(), reactor=reactor,
                                         etcd_security=self.etcd_security)
        except ValueError as e:
            raise AdminError(str(e)) from None

    def object_store(self, reactor):
        try:
            return stores.object_store(data_dir=self.data_dir, s3_bucket=self.s3_bucket, s3_endpoint=self.s3_endpoint,
                                       s3_region=self.s3_region, s3_prefix=self.s3_prefix, max_attempts=3,
                                       reactor=reactor)
        except ValueError as e:
            raise AdminError(str(e)) from None


@dataclass(frozen=True, slots=True)
class Stores:
    """The open stores a command's work uses."""

    metadata: object
    objects: object

    async def owners(self):
        """{(topic, partition): node id} for every owned partition."""
        if IOwnershipStore.providedBy(self.metadata):
            # The owner keys say it, under their owners' leases.
            keys = self.metadata.keys
            reply = await self.metadata.client.range(keys.area("owners/"), prefix=True)
            return {keys.topic_partition(kv.key): layout.decode_owner(kv).node_id for kv in reply.kvs}
        # The embedded store serves one broker, which owns every partition
        # it has claimed while it is registered.
        brokers = await self.metadata.brokers()
        if not brokers:
            return {}
        owners = {}
        for info in (await self.metadata.topics()).values():
            for partition in range(info.partitions):
                if (await self.metadata.partition_state(info.name, partition)).leader_epoch > 0:
                    owners[info.name, partition] = brokers[0].node_id
        return owners


async def all_of(deferreds):
    """Wait for every Deferred; -> their results, or raise the first one's
    exception (after all have finished)."""
    try:
        return await gatherResults(deferreds, consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()


async def open_stores(location, reactor, work, create=False):
    """Run ``work(stores)`` with the stores open, and close them after
    (``create``: making an embedded metadata store that does not exist).
    Store failures become AdminErrors."""
    metadata = location.metadata_store(reactor, create)
    objects = location.object_store(reactor)
    metadata.startService()
    try:
        return await work(Stores(metadata, objects))
    except MetadataError as e:
        raise AdminError(f"metadata store: {e}") from None
    except EtcdError as e:
        raise AdminError(f"etcd: {e}") from None
    except ObjectStoreError as e:
        raise AdminError(f"object store: {e}") from None
    finally:
        await metadata.stopService()
        await objects.close()


def react_runner(main):
    """Run ``main(reactor)`` (returning a Deferred) under ``task.react`` and
    return its result, or raise its exception, here rather than through
    react's traceback printing and exit."""
    outcome = []

    def capture(reactor):
        return main(reactor).addBoth(outcome.append)

    try:
        react(capture)
    except SystemExit:
        pass
    if not outcome:
        raise click.Abort()
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


class Admin:
    """What every command gets as ``ctx.obj``: the cluster's location and
    the way to run work against it."""

    def __init__(self, location, runner=react_runner):
        self.location = location
        self.runner = runner

    def run(self, work, create=False):
        """Run ``work(stores)`` (a coroutine function); -> its result.
        ``create``: make the embedded metadata store if there is none."""
        return self.runner(lambda reactor: Deferred.fromCoroutine(open_stores(self.location, reactor, work, create)))


def completing(names):
    """A click ``shell_complete`` callback offering what ``names(stores)``
    (a coroutine function) lists: topic or group names, read from the
    cluster that the command line so far points at."""

    def complete(ctx, param, incomplete):
        root = ctx.find_root()
        runner = root.obj if callable(root.obj) else react_runner
        try:
            found = Admin(Location.from_options(**root.params), runner).run(names)
        except click.ClickException:
            return []
        return [name for name in found if name.startswith(incomplete)]

    return complete


async def topic_names(stores):
    return sorted(await stores.metadata.topics())


async def group_names(stores):
    return await stores.metadata.groups()
