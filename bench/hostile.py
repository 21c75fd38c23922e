"""What hostile or careless clients cost a broker process: its peak RSS and
the longest ApiVersions round trip an unrelated connection sees meanwhile.

    PYTHONPATH=. python bench/hostile.py [--probe partitions|longpoll|output|decode|connections|all]

Each probe starts a fresh broker (local-directory store, 127.0.0.1 only),
measures its resident memory before the probe, then samples it and pings it
from another connection every 10 ms while the probe runs. Every probe is
bounded in count and time.
"""

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from kafscale.protocol.messages import ApiKey, decode_response_header, encode_request, response_codec
from kafscale.protocol.schema import uvarint


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Wire:
    """A blocking connection sending exactly the bytes it is given."""

    def __init__(self, port, timeout=120):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def frame(self, api_key, version, body):
        self.correlation_id += 1
        return encode_request(api_key, version, self.correlation_id, "hostile", body)

    def send(self, data):
        self.sock.sendall(data)

    def receive(self, api_key, version):
        (size,) = struct.unpack(">i", self._read(4))
        frame = self._read(size)
        _, offset = decode_response_header(frame, api_key, version)
        return response_codec(api_key, version).decode(frame, offset)[0]

    def request(self, api_key, version, body):
        self.send(self.frame(api_key, version, body))
        return self.receive(api_key, version)

    def _read(self, size):
        chunks = []
        while size:
            chunk = self.sock.recv(min(size, 1 << 20))
            if not chunk:
                raise ConnectionError("closed by the broker")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Broker:
    def __init__(self, *args):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="kafscale-hostile-")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        self.log = open(os.path.join(self.data_dir, "broker.log"), "wb")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "kafscale", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
             "--data-dir", self.data_dir, *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"broker exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the broker did not listen")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Watch:
    """Samples the broker's RSS and pings it with ApiVersions from its own
    connection every 10 ms until stopped."""

    def __init__(self, broker):
        self.broker = broker
        self.baseline = rss_bytes(broker.process.pid)
        self.peak = self.baseline
        self.longest = 0.0
        self.unanswered = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._ping)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes(self.broker.process.pid))

    def _ping(self):
        wire = Wire(self.broker.port, timeout=60)
        try:
            while not self._stop.wait(0.01):
                began = time.monotonic()
                try:
                    wire.request(ApiKey.API_VERSIONS, 3, {"client_software_name": "bystander"})
                except OSError:
                    self.unanswered = True
                    return
                self.longest = max(self.longest, time.monotonic() - began)
        finally:
            wire.close()

    def report(self, name, **figures):
        extra = "".join(f"  {key}={value}" for key, value in figures.items())
        print(f"{name:12} rss {self.baseline / 2**20:6.0f} MiB -> peak {self.peak / 2**20:6.0f} MiB"
              f" (+{(self.peak - self.baseline) / 2**20:.0f})  longest ApiVersions {self.longest * 1000:7.1f} ms"
              f"{'  BYSTANDER CUT OFF' if self.unanswered else ''}{extra}", flush=True)


def create_topics(wire, topics, validate_only=False, timeout_ms=120000):
    body = {"topics": [{"name": name, "num_partitions": count, "replication_factor": -1,
                        "assignments": [], "configs": []} for name, count in topics],
            "timeout_ms": timeout_ms, "validate_only": validate_only}
    response = wire.request(ApiKey.CREATE_TOPICS, 5, body)
    return [topic["error_code"] for topic in response["topics"]]


def fetch_body(topics, max_wait_ms, min_bytes=1, max_bytes=52428800, partition_max_bytes=1048576):
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": max_bytes,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": name, "partitions": [
                {"partition": p, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                 "log_start_offset": -1, "partition_max_bytes": partition_max_bytes} for p in range(count)]}
                for name, count in topics],
            "forgotten_topics_data": [], "rack_id": ""}


def produce(bootstrap, topic, count, size):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1})
    payload = b"x" * size
    for _ in range(count):
        producer.produce(topic, payload, partition=0)
        producer.poll(0)
    producer.flush(60)


def probe_partitions():
    """Item 4: creates among many topics (each used to re-read every topic),
    a partition count no broker can hold, and a large valid create."""
    broker = Broker()
    try:
        wire = Wire(broker.port, timeout=120)
        with Watch(broker) as watch:
            for batch in range(2):
                create_topics(wire, [(f"pre-{batch}-{i}", 1) for i in range(300)])
            many = timed(create_topics, wire, [(f"many-{i}", 1) for i in range(300)])
            huge = timed(create_topics, wire, [("huge", 2**31 - 1)], validate_only=True)
            wide = timed(create_topics, wire, [("wide", 10000)])
        watch.report("partitions", create_300_after_600=many, validate_2e31=huge, create_10000=wide)
        wire.close()
    finally:
        broker.stop()


def timed(create, *args, **kwargs):
    """'error codes/seconds' of a create."""
    began = time.monotonic()
    try:
        codes = create(*args, **kwargs)
    except TimeoutError:
        return f"timeout/{time.monotonic() - began:.1f}s"
    return f"{max(codes)}/{time.monotonic() - began:.2f}s"


def probe_longpoll(partitions=20000, clients=3, fetches=10):
    """Item 6: long polls parked over many partitions by clients that then
    leave, and a one-record produce afterwards."""
    broker = Broker()
    try:
        wire = Wire(broker.port, timeout=120)
        topics = [(f"poll-{i}", 5000) for i in range(partitions // 5000)]
        create_topics(wire, topics)
        wire.close()
        with Watch(broker) as watch:
            parked = []
            frame_body = fetch_body(topics, max_wait_ms=600000)
            for _ in range(clients):
                client = Wire(broker.port)
                client.send(b"".join(client.frame(ApiKey.FETCH, 12, frame_body) for _ in range(fetches)))
                parked.append(client)
            time.sleep(2)
            for client in parked:
                client.close()
            time.sleep(0.5)
            began = time.monotonic()
            produce(broker.bootstrap, topics[0][0], 1, 100)
            produce_s = time.monotonic() - began
            time.sleep(0.5)
        watch.report("longpoll", produce_1_record=f"{produce_s:.2f}s")
    finally:
        broker.stop()


def probe_output(fetches=300):
    """Item 7: pipelined fetches of a megabyte each that the client never reads."""
    broker = Broker()
    try:
        wire = Wire(broker.port)
        create_topics(wire, [("full", 1)])
        wire.close()
        produce(broker.bootstrap, "full", 110, 10000)
        with Watch(broker) as watch:
            client = Wire(broker.port)
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            frame = client.frame(ApiKey.FETCH, 12, fetch_body([("full", 1)], max_wait_ms=0))
            sender = threading.Thread(target=lambda: _send_quietly(client, frame * fetches))
            sender.start()
            time.sleep(5)
            client.close()
            sender.join()
            time.sleep(0.5)
        watch.report("output", pipelined_fetches=fetches)
    finally:
        broker.stop()


def _send_quietly(wire, data):
    try:
        wire.send(data)
    except OSError:
        pass


def probe_decode():
    """Item 8: a ~3 MB Fetch naming a million empty topics, one naming
    99,000 (within the broker's bound), and a burst of pipelined requests
    far past the in-flight bound."""
    broker = Broker()
    try:
        with Watch(broker) as watch:
            outcomes = {}
            for count in (1_000_000, 99_000):
                outcomes[f"topics_{count}"] = _empty_topics_fetch(broker.port, count)
            burst = Wire(broker.port)
            frame = burst.frame(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
            burst.send(frame * 20000)
            for _ in range(20000):
                burst.receive(ApiKey.METADATA, 12)
            burst.close()
        watch.report("decode", **outcomes)
    finally:
        broker.stop()


def _empty_topics_fetch(port, topics):
    """Send a Fetch v12 naming ``topics`` empty topics (an empty compact
    name, an empty compact partition array and no tagged fields: three bytes
    each); -> 'answered' or 'closed', the MB sent and the seconds taken."""
    client = Wire(port)
    head = client.frame(ApiKey.FETCH, 12, fetch_body([], max_wait_ms=0))
    # The body built ends in an empty topics array (one byte), then
    # forgotten_topics_data, rack_id and tagged fields (one each).
    topics_at = len(head) - 4
    body = head[4:topics_at] + uvarint(topics + 1) + b"\x01\x01\x00" * topics + head[topics_at + 1:]
    began = time.monotonic()
    try:
        client.send(struct.pack(">i", len(body)) + body)
        client.receive(ApiKey.FETCH, 12)
        outcome = "answered"
    except OSError:
        outcome = "closed"
    finally:
        client.close()
    return f"{outcome}/{len(body) / 1e6:.1f}MB/{time.monotonic() - began:.2f}s"


def probe_connections(count=3000):
    """Item 8: many idle connections from one address."""
    broker = Broker()
    try:
        with Watch(broker) as watch:
            opened = []
            refused = 0
            for _ in range(count):
                try:
                    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
                    opened.append(s)
                except OSError:
                    refused += 1
            time.sleep(1)
            open_after = 0
            for s in opened:
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        continue
                except BlockingIOError:
                    open_after += 1
                except OSError:
                    continue
            for s in opened:
                s.close()
            time.sleep(0.5)
        watch.report("connections", attempted=count, kept_open=open_after)
    finally:
        broker.stop()


PROBES = {"partitions": probe_partitions, "longpoll": probe_longpoll, "output": probe_output,
          "decode": probe_decode, "connections": probe_connections}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", choices=[*PROBES, "all"], default="all")
    args = parser.parse_args()
    for name, probe in PROBES.items():
        if args.probe in (name, "all"):
            probe()


if __name__ == "__main__":
    main()
