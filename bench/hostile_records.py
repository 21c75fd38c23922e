"""What a decompression bomb costs a broker process: a 32 KiB zstd batch
that expands to 1 GiB, then a ListOffsets by a time only its decompression
can answer. Prints the broker's peak RSS before and after, and the longest
ApiVersions round trip on another connection while the lookup runs.

    PYTHONPATH=. python bench/hostile_records.py
"""

import threading
import time

from kafscale.protocol.messages import ApiKey
from tests.support.brokers import BrokerProcess
from tests.support.records import bomb_batch
from tests.support.topics import produce_request
from tests.support.wire import Connection

BASE_TIME = 1_700_000_000_000


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def ping(bootstrap, stop, longest):
    conn = Connection(bootstrap, timeout=60)
    try:
        while not stop.is_set():
            started = time.monotonic()
            conn.request(ApiKey.API_VERSIONS, 3, {})
            longest[0] = max(longest[0], time.monotonic() - started)
            time.sleep(0.005)
    finally:
        conn.close()


def main():
    broker = BrokerProcess("--log-level", "warn").start()
    try:
        conn = Connection(broker.bootstrap, timeout=120)
        conn.request(ApiKey.CREATE_TOPICS, 5, {"topics": [{"name": "bombed", "num_partitions": 1,
                                                          "replication_factor": -1}], "timeout_ms": 5000})
        conn.request(ApiKey.PRODUCE, 9, produce_request("bombed", bomb_batch(1 << 30, BASE_TIME)))
        before = peak_rss_mib(broker.process.pid)
        stop, longest = threading.Event(), [0.0]
        pinger = threading.Thread(target=ping, args=(broker.bootstrap, stop, longest))
        pinger.start()
        started = time.monotonic()
        body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": "bombed", "partitions": [
            {"partition_index": 0, "timestamp": BASE_TIME + 5, "current_leader_epoch": -1}]}]}
        answer = conn.request(ApiKey.LIST_OFFSETS, 7, body)["topics"][0]["partitions"][0]
        took = time.monotonic() - started
        stop.set()
        pinger.join()
        print(f"ListOffsets: error {answer['error_code']} offset {answer['offset']} in {took:.2f} s")
        print(f"peak RSS {before:.0f} -> {peak_rss_mib(broker.process.pid):.0f} MiB; "
              f"longest ApiVersions round trip {longest[0] * 1000:.0f} ms")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
