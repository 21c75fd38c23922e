"""kafkajs, the Node.js client, driven from tests: ``run_kafkajs(scenario)``
runs ``tests/support/node/client.js`` (see there for what a scenario
says) and returns its JSON result. Needs node and the package installed by
``npm ci --prefix tests/support/node`` (.ci/run does both); a test
skips, saying so, when either is missing."""

import json
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest

DIRECTORY = os.path.join(os.path.dirname(__file__), "node")


def require_kafkajs():
    """Skip the calling test when kafkajs cannot run here."""
    if shutil.which("node") is None:
        raise SkipTest("node is not installed (.ci/run installs it)")
    if not os.path.isdir(os.path.join(DIRECTORY, "node_modules", "kafkajs")):
        raise SkipTest(f"kafkajs is not installed: npm ci --prefix {DIRECTORY}")


def run_kafkajs(scenario, timeout=60):
    """Run one scenario (blocks: call through ``in_thread``). -> its result;
    raises AssertionError with kafkajs' error when the scenario failed."""
    finished = subprocess.run(["node", os.path.join(DIRECTORY, "client.js")], input=json.dumps(scenario),
                              capture_output=True, text=True, timeout=timeout, cwd=DIRECTORY)
    try:
        result = json.loads(finished.stdout)
    except ValueError:
        raise AssertionError(f"kafkajs said nothing readable: {finished.stdout!r} {finished.stderr!r}") from None
    if "error" in result:
        raise AssertionError(f"kafkajs failed: {result['error']}")
    return result
