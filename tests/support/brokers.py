"""Brokers for tests: in this process (sharing trial's reactor) or as real
``twistd -n kafscale`` processes, always on free loopback ports."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet.threads import deferToThread

from kafscale.tap import Options, makeService

# The checkout's root: broker processes import kafscale and find the twistd
# plugin from here, whatever directory trial runs in.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_broker(test, *args):
    """Start an in-process broker with ``args`` as twistd options; stopped
    when the test ends, and listening when this returns (its admin API on a
    port of its own, see :func:`admin_url`, unless ``--admin-listen`` is given).
    Returns (broker, bootstrap "127.0.0.1:port")."""
    port = free_port()
    options = Options()
    data_dir = tempfile.mkdtemp(prefix="kafscale-test-")
    admin = [] if "--admin-listen" in args else ["--admin-listen", "tcp:0:interface=127.0.0.1"]
    options.parseOptions(["--listen", f"tcp:{port}:interface=127.0.0.1", "--data-dir", data_dir, *admin, *args])
    service = makeService(options)
    service.startService()
    test.addCleanup(service.stopService)
    await service.getServiceNamed("listener").listening
    await service.getServiceNamed("admin").listening
    return service.getServiceNamed("broker"), f"127.0.0.1:{port}"


def admin_url(broker):
    """The base URL of an in-process broker's admin API."""
    port = broker.parent.getServiceNamed("admin").port
    return f"http://127.0.0.1:{port.getHost().port}"


def in_thread(function, *args, **kwargs):
    """Run a blocking client call off the reactor thread."""
    return deferToThread(function, *args, **kwargs)


class BrokerProcess:
    """A real broker process, started with ``twistd -n kafscale``."""

    def __init__(self, *args, port=None, data_dir=None, env=None, admin_port=None):
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kafscale-proc-")
        self.args = args
        self.env = env
        self.process = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20):
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        command = [
            twistd, "-n", "--pidfile=", "kafscale",
            "--listen", f"tcp:{self.port}:interface=127.0.0.1", "--data-dir", self.data_dir,
            "--admin-listen", f"tcp:{self.admin_port}:interface=127.0.0.1", *self.args,
        ]
        env = dict(os.environ, **(self.env or {}))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        self.log = open(os.path.join(self.data_dir, "broker.log"), "ab")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker did not listen within {timeout}s: {self.output()}")

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def output(self):
        with open(os.path.join(self.data_dir, "broker.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, number):
        self.process.send_signal(number)

    def stop(self, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def kill(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


async def s3_args(test, server=None):
    """twistd options that put a broker's segments in a fresh bucket of the
    test's moto server (credentials through the standard AWS variables)."""
    from tests.support.s3_server import s3_store

    store = await s3_store(test, server)
    server = server or _shared_s3()
    test.patch(os, "environ", dict(
        os.environ, AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
    ))
    return ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]


def _shared_s3():
    from tests.support.s3_server import s3_server

    return s3_server()
