"""A real S3 endpoint for tests: moto in server mode, on a free loopback port.

trial never calls setUpClass, so the shared servers start lazily, once per
test process, the first time a test asks (:func:`s3_server`,
:func:`s3_endpoint`), and stop at exit. The child is also told by the kernel
to die with the test process (PR_SET_DEATHSIG), so a killed test run leaves
no server behind. Tests that stop and restart S3 make their own
:class:`S3Server`.
"""

import atexit
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import botocore.session

from kafscale.storage.s3 import S3ObjectStore

# Runs in the child, then becomes moto: ask for SIGKILL when the parent
# dies, and give up if it already died before the request took effect.
_LAUNCHER = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    sys.exit("parent gone")
os.execv(sys.executable, [sys.executable, "-m", "moto.server", *sys.argv[2:]])
"""

# Anything signs requests to a server that does not check signatures.
UNCHECKED_CREDENTIALS = ("testing", "testing")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Server:
    """One moto server process; ``start()`` and ``stop()`` may alternate,
    always on the same port.

    With ``auth`` moto checks every request's SigV4 signature and IAM
    permissions (INITIAL_NO_AUTH_ACTION_COUNT=0); ``start()`` then creates an
    IAM user allowed s3:* and puts its keys in ``access_key``/``secret_key``
    (new keys after every start: moto keeps nothing across restarts).
    """

    def __init__(self, auth=False):
        self.auth = auth
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key, self.secret_key = UNCHECKED_CREDENTIALS
        self._process = None
        atexit.register(self.stop)

    @property
    def running(self):
        return self._process is not None and self._process.poll() is None

    def start(self, timeout=20.0):
        """Start moto and return once it answers HTTP (blocking: fixture only)."""
        if self.running:
            return
        environment = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0" if self.auth else "inf")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LAUNCHER,
                str(os.getpid()),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server on port {self.port} did not answer in {timeout}s")
            time.sleep(0.05)
        if self.auth:
            self._create_iam_user()

    def stop(self):
        """Kill moto (all its data goes with it) and wait until it is gone."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _answers(self):
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _set_unauthenticated_actions(self, count):
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=str(count).encode(),
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            json.load(response)

    def _create_iam_user(self):
        # Open the door for exactly the set-up calls, then close it again.
        self._set_unauthenticated_actions("inf")
        try:
            iam = botocore.session.get_session().create_client(
                "iam",
                region_name="us-east-1",
                endpoint_url=self.endpoint,
                aws_access_key_id=UNCHECKED_CREDENTIALS[0],
                aws_secret_access_key=UNCHECKED_CREDENTIALS[1],
            )
            user = f"kafscale-{uuid.uuid4().hex[:8]}"
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user,
                PolicyName="s3",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                    }
                ),
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            iam.close()
            self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            self._set_unauthenticated_actions(0)


_shared = {}


def s3_server(auth=False) -> S3Server:
    """This process's shared moto server (with signature checking if ``auth``)."""
    server = _shared.get(auth)
    if server is None:
        server = _shared[auth] = S3Server(auth)
    server.start()
    return server


def s3_endpoint(auth=False) -> str:
    return s3_server(auth).endpoint


def unique_bucket() -> str:
    return f"kafscale-test-{uuid.uuid4().hex[:16]}"


async def s3_store(testcase, server=None, **options) -> S3ObjectStore:
    """An S3ObjectStore on a new bucket of ``server`` (the shared unchecked
    one by default), closed when ``testcase`` ends."""
    server = server or s3_server()
    options.setdefault("access_key", server.access_key)
    options.setdefault("secret_key", server.secret_key)
    store = S3ObjectStore(unique_bucket(), endpoint=server.endpoint, region="us-east-1", **options)
    testcase.addCleanup(store.close)
    await store.create_bucket()
    return store
