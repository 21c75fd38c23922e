"""The harness the ``kafscale-admin`` tests share: a broker on the stores a
test chooses, and the CLI run through click's CliRunner in a thread (it
blocks), its Twisted work on trial's reactor instead of under ``task.react``."""

import json
import os
import traceback

from click.testing import CliRunner
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread
from twisted.trial import unittest

from kafscale_admin.cli import main
from tests.support.brokers import in_thread, start_broker
from tests.support.etcd_server import etcd_cluster
from tests.support.s3_server import s3_server


def on_trials_reactor(work):
    """A kafscale-admin runner for tests: run ``work(reactor)`` on the
    reactor trial already runs, from CliRunner's thread."""
    return blockingCallFromThread(reactor, work, reactor)


class AdminCase(unittest.TestCase):
    """Runs a broker and points kafscale-admin at its stores; subclasses
    choose the stores (the embedded ones by default)."""

    broker_args = ()

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *self.broker_args, *await self.store_args())
        self.location = ["--data-dir", self.broker.config.data_dir, *self.admin_store_args()]

    async def store_args(self):
        return []

    def admin_store_args(self):
        return []

    def admin_env(self):
        return {}

    async def admin(self, *args, exit_code=0, input=None):
        """Run ``kafscale-admin <location> args`` (``input`` on its standard
        input); -> the Result, checked for ``exit_code``."""
        runner = CliRunner()
        env = {"COLUMNS": "250", **self.admin_env()}
        result = await in_thread(runner.invoke, main, [*self.location, *args], obj=on_trials_reactor, env=env,
                                 input=input)
        if result.exit_code != exit_code:
            detail = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
            self.fail(f"exit {result.exit_code}, not {exit_code}\nstdout: {result.stdout}\n"
                      f"stderr: {result.stderr}\n{detail}")
        return result

    async def admin_json(self, *args, exit_code=0):
        return json.loads((await self.admin(*args, "--output", "json", exit_code=exit_code)).stdout)

    async def refused(self, *args, says, input=None):
        """Run a command that must fail with one line on stderr saying ``says``."""
        result = await self.admin(*args, exit_code=1, input=input)
        self.assertEqual(result.stdout, "")
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn(says, result.stderr)
        return result


class S3Stores:
    """Mixin: the broker and kafscale-admin on a moto bucket."""

    async def store_args(self):
        from tests.support.s3_server import s3_store

        server = s3_server()
        store = await s3_store(self, server)
        self.s3 = ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]
        # In the real environment (not a patched copy): rich reads COLUMNS from it.
        for name, value in (("AWS_ACCESS_KEY_ID", server.access_key), ("AWS_SECRET_ACCESS_KEY", server.secret_key)):
            self.addCleanup(_restore, name, os.environ.get(name))
            os.environ[name] = value
        return self.s3

    def admin_store_args(self):
        return self.s3


class EtcdStores(S3Stores):
    """Mixin: the broker and kafscale-admin on a real etcd (a cluster of
    its own in it) and a moto bucket."""

    async def store_args(self):
        self.etcd = etcd_cluster("admin")
        return [*self.etcd, *await super().store_args()]

    def admin_store_args(self):
        return [*self.etcd, *super().admin_store_args()]


def _restore(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
