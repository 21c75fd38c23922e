"""The ``kafscale-admin`` entry point: --version, shell completion, and real
processes, where the work runs under ``task.react``."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner
from twisted.trial import unittest

from kafscale import __version__
from kafscale.metadata.interfaces import CommittedOffset
from kafscale_admin.cli import PROG_NAME, main
from tests.support.admin import AdminCase, on_trials_reactor
from tests.support.brokers import SOURCE_ROOT, free_port, in_thread
from tests.support.topics import create_topic


def run_admin(*args, env=None):
    """``python -m kafscale_admin args`` in a process of its own."""
    environment = dict(os.environ, PYTHONPATH=SOURCE_ROOT, COLUMNS="200", **(env or {}))
    return subprocess.run([sys.executable, "-m", "kafscale_admin", *args], capture_output=True, text=True,
                          env=environment, timeout=60)


class EntryPointTests(unittest.TestCase):
    def test_version(self):
        result = CliRunner().invoke(main, ["--version"], prog_name=PROG_NAME)
        self.assertEqual((result.exit_code, result.stdout), (0, f"kafscale-admin, version {__version__}\n"))

    def test_completion_script(self):
        result = CliRunner().invoke(main, ["completion", "bash"], prog_name=PROG_NAME)
        self.assertEqual(result.exit_code, 0)
        self.assertIn("_KAFSCALE_ADMIN_COMPLETE=bash_complete", result.stdout)
        self.assertIn("complete -o nosort -F", result.stdout)

    def test_completion_answers(self):
        env = {"_KAFSCALE_ADMIN_COMPLETE": "bash_complete", "COMP_WORDS": "kafscale-admin segments ",
               "COMP_CWORD": "2"}
        result = CliRunner().invoke(main, [], prog_name=PROG_NAME, env=env)
        self.assertEqual(result.exit_code, 0)
        self.assertEqual(sorted(line.split(",")[1] for line in result.stdout.splitlines()),
                         ["dump", "gc", "inspect", "list", "verify"])

    def test_help_names_the_environment(self):
        result = CliRunner().invoke(main, ["--help"], prog_name=PROG_NAME)
        for variable in ("KAFSCALE_DATA_DIR", "KAFSCALE_ETCD", "KAFSCALE_S3_BUCKET", "KAFSCALE_CLUSTER_ID"):
            self.assertIn(variable, result.stdout)


class CompletionTests(AdminCase):
    async def complete(self, words):
        env = {"_KAFSCALE_ADMIN_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = await in_thread(CliRunner().invoke, main, [], prog_name=PROG_NAME, env=env, obj=on_trials_reactor)
        self.assertEqual(result.exit_code, 0, result.output)
        return sorted(line.split(",")[1] for line in result.stdout.splitlines() if line)

    async def test_topic_and_group_names(self):
        for name in ("orders", "orders-dlq", "audit"):
            await create_topic(self.bootstrap, name)
        await self.broker.metadata.commit_offsets("billing", {("orders", 0): CommittedOffset(0, -1, "", 0)})
        data_dir = self.broker.config.data_dir
        self.assertEqual(await self.complete(f"kafscale-admin --data-dir {data_dir} topics describe ord"),
                         ["orders", "orders-dlq"])
        self.assertEqual(await self.complete(f"kafscale-admin -d {data_dir} segments verify "),
                         ["audit", "orders", "orders-dlq"])
        self.assertEqual(await self.complete(f"kafscale-admin -d {data_dir} groups reset-offsets billing --topic a"),
                         ["audit"])
        self.assertEqual(await self.complete(f"kafscale-admin -d {data_dir} groups describe "), ["billing"])
        # Nothing to offer, and no error, where there is no store.
        self.assertEqual(await self.complete(f"kafscale-admin -d {self.mktemp()} topics describe "), [])


class ProcessTests(AdminCase):
    async def test_commands_run_under_their_own_reactor(self):
        await create_topic(self.bootstrap, "seen", 2)
        result = await in_thread(run_admin, "topics", "list", "-o", "json",
                                 env={"KAFSCALE_DATA_DIR": self.broker.config.data_dir})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([(t["name"], t["partitions"]) for t in json.loads(result.stdout)], [("seen", 2)])

    async def test_a_user_mistake_is_one_line(self):
        for args, says in [
            (["--data-dir", self.broker.config.data_dir, "topics", "describe", "absent"], "no topic 'absent'"),
            (["--data-dir", self.mktemp(), "topics", "list"], "no metadata store at"),
            (["--data-dir", self.broker.config.data_dir, "--s3-bucket", "b", "--s3-endpoint", "http://127.0.0.1:1",
              "topics", "list"], "S3 credentials missing"),
            (["--etcd", f"http://127.0.0.1:{free_port()}", "--timeout", "1", "topics", "list"],
             "metadata store: etcd: "),
        ]:
            result = await in_thread(run_admin, *args, env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertEqual(result.stdout, "")
            [line] = result.stderr.splitlines()
            self.assertTrue(line.startswith("Error: "), line)
            self.assertIn(says, line)
