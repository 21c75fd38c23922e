"""What security costs: produce MB/s and produce p99 latency over SASL_SSL
(SCRAM-SHA-512) against PLAINTEXT, on one broker process with both
listeners, and how many new authenticated connections per second it takes
(TLS handshake, ApiVersions, SaslHandshake, SCRAM's two round trips).

    PYTHONPATH=. python bench/security.py [--seconds 8] [--handshakes 200]

Client and broker share this machine's cores; the figures are a floor.
"""

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from scramp import ScramClient

from bench.data_path import produce_for
from kafscale.protocol.messages import ApiKey, decode_response_header, encode_request, response_codec
from tests.support.brokers import free_port
from tests.support.tls import CertificateAuthority

USER, PASSWORD = "bench", "bench-secret"


class Broker:
    """A broker process with a PLAINTEXT and a SASL_SSL listener, and one user."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="kafscale-bench-security-")
        self.ca = CertificateAuthority(self.directory)
        cert, key = self.ca.issue("broker", server=True)
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        data_dir = os.path.join(self.directory, "data")
        subprocess.run([sys.executable, "-m", "kafscale_admin", "-d", data_dir, "users", "set", USER,
                        "--password-stdin"], input=PASSWORD.encode(), env=env, check=True)
        self.plain, self.secure = free_port(), free_port()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "--logfile", os.path.join(self.directory, "broker.log"), "kafscale", "--data-dir", data_dir, "--log-level", "warn",
             "--listeners", f"PLAINTEXT://127.0.0.1:{self.plain},SASL_SSL://127.0.0.1:{self.secure}",
             "--tls-cert", cert, "--tls-key", key], env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.secure), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("the broker did not start")
                time.sleep(0.05)

    def client(self, secure):
        if not secure:
            return {"bootstrap.servers": f"127.0.0.1:{self.plain}"}
        return {"bootstrap.servers": f"127.0.0.1:{self.secure}", "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER, "sasl.password": PASSWORD,
                "ssl.ca.location": self.ca.ca_file}

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def throughput(broker, secure, seconds, size=1024):
    settings = broker.client(secure)
    topic = f"throughput-{'secure' if secure else 'plain'}"
    admin = AdminClient(settings)
    admin.create_topics([NewTopic(topic, 3)])[topic].result(30)
    producer = Producer({**settings, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
                         "queue.buffering.max.kbytes": 256 << 10})
    acked, elapsed = produce_for(producer, topic, os.urandom(size), seconds)
    return acked * size / 1e6 / elapsed


def latency(broker, secure, count=300, warmup=10, rate=50):
    settings = broker.client(secure)
    topic = f"latency-{'secure' if secure else 'plain'}"
    admin = AdminClient(settings)
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    producer = Producer({**settings, "acks": "all", "linger.ms": 0})
    samples = []
    for i in range(warmup + count):
        started = time.monotonic()
        done = threading.Event()
        producer.produce(topic, b"x" * 100, on_delivery=lambda e, m: done.set())
        while not done.is_set():
            producer.poll(0.0005)
        if i >= warmup:
            samples.append((time.monotonic() - started) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _request(tls, api_key, version, body, correlation_id):
    tls.sendall(encode_request(api_key, version, correlation_id, "bench", body))
    size = int.from_bytes(_read(tls, 4), "big")
    frame = _read(tls, size)
    _, offset = decode_response_header(frame, api_key, version)
    return response_codec(api_key, version).decode(frame, offset)[0]


def _read(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def one_handshake(port, context):
    """A new connection authenticated with SCRAM-SHA-512, as clients do it."""
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        _request(tls, ApiKey.API_VERSIONS, 3, {"client_software_name": "bench"}, 1)
        _request(tls, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-512"}, 2)
        scram = ScramClient(["SCRAM-SHA-512"], USER, PASSWORD)
        first = _request(tls, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": scram.get_client_first().encode()}, 3)
        scram.set_server_first(bytes(first["auth_bytes"]).decode())
        final = _request(tls, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": scram.get_client_final().encode()}, 4)
        if final["error_code"]:
            raise RuntimeError(f"authentication failed: {final}")
        scram.set_server_final(bytes(final["auth_bytes"]).decode())


def handshakes(broker, count, clients=8):
    context = ssl.create_default_context(cafile=broker.ca.ca_file)
    one_handshake(broker.secure, context)
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: one_handshake(broker.secure, context), range(count)))
    return count / (time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--handshakes", type=int, default=200)
    args = parser.parse_args()
    broker = Broker()
    try:
        for secure in (False, True):
            name = "SASL_SSL (SCRAM-SHA-512)" if secure else "PLAINTEXT"
            rate = throughput(broker, secure, args.seconds)
            p50, p99 = latency(broker, secure)
            print(f"{name:26} produce {rate:6.1f} MB/s (1 KiB records, acks=all); "
                  f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
        print(f"new SASL_SSL connections authenticated per second (8 clients): "
              f"{handshakes(broker, args.handshakes):.0f}", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
