"""Microseconds per operation of the Kafka codec on the broker's hot paths.

    PYTHONPATH=. python bench/codec.py
"""

import timeit
import uuid

from kafscale.protocol.messages import ApiKey, encode_response, encode_response_parts, request_codec, response_codec

KIB = 1024
MIB = 1024 * KIB


def produce_request(version, partitions, records_size):
    """An encoded Produce request body as a client would send it."""
    body = {
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [{
            "name": "events",
            "partition_data": [{"index": i, "records": bytes(records_size)} for i in range(partitions)],
        }],
    }
    return memoryview(request_codec(ApiKey.PRODUCE, version).encode(body))


def fetch_response(partitions, records_size):
    records = memoryview(bytes(records_size))
    return {
        "throttle_time_ms": 0,
        "session_id": 0,
        "responses": [{
            "topic": "events",
            "topic_id": uuid.uuid4(),
            "partitions": [
                {
                    "partition_index": i,
                    "high_watermark": 1000,
                    "last_stable_offset": 1000,
                    "log_start_offset": 0,
                    "records": records,
                }
                for i in range(partitions)
            ],
        }],
    }


def metadata_response(topics, partitions):
    return {
        "brokers": [{"node_id": n, "host": f"broker-{n}.example", "port": 9092, "rack": None} for n in range(3)],
        "cluster_id": "kafscale",
        "controller_id": 0,
        "topics": [
            {
                "name": f"topic-{t}",
                "topic_id": uuid.uuid4(),
                "partitions": [
                    {"partition_index": p, "leader_id": p % 3, "leader_epoch": 7,
                     "replica_nodes": [p % 3], "isr_nodes": [p % 3]}
                    for p in range(partitions)
                ],
            }
            for t in range(topics)
        ],
    }


def best_microseconds(statement, number):
    """Best of five runs of ``number`` calls, in µs per call."""
    return min(timeit.repeat(statement, number=number, repeat=5)) / number * 1e6


def main():
    cases = []
    for version in (9, 13):
        codec = request_codec(ApiKey.PRODUCE, version)
        big, small = produce_request(version, 1, MIB), produce_request(version, 100, 10 * KIB)
        cases.append((f"decode Produce v{version} request, 1 partition x 1 MiB", lambda c=codec, b=big: c.decode(b), 20000))
        cases.append((f"decode Produce v{version} request, 100 partitions x 10 KiB", lambda c=codec, b=small: c.decode(b), 2000))
    for version in (11, 16):
        body = fetch_response(100, 10 * KIB)
        codec = response_codec(ApiKey.FETCH, version)
        cases.append((f"encode Fetch v{version} response body, 100 partitions x 10 KiB", lambda c=codec, b=body: c.encode(b), 500))
        cases.append((f"encode Fetch v{version} response frame as parts (no join)",
                      lambda v=version, b=body: encode_response_parts(ApiKey.FETCH, v, 1, b), 2000))
    for version in (5, 12):
        body = metadata_response(100, 3)
        cases.append((f"encode Metadata v{version} response frame, 100 topics x 3 partitions",
                      lambda v=version, b=body: encode_response(ApiKey.METADATA, v, 1, b), 500))
    for name, statement, number in cases:
        print(f"{best_microseconds(statement, number):10.1f} µs  {name}")


if __name__ == "__main__":
    main()
