"""What one commit costs as a partition's manifest grows: the in-memory
state a commit produces (PartitionState.with_segment, then the partition
log taking it up) and a commit through the embedded metadata store.

    PYTHONPATH=. python bench/manifest.py [--segments 1000000] [--commits 50]

Prints the memory the manifest holds, and per commit the time and the
bytes allocated (tracemalloc's peak during the commit: what a commit
copies). Runs against whatever ``kafscale`` is on the path, so the same
script measures an older checkout for comparison.
"""

import argparse
import os
import sqlite3
import tempfile
import time
import tracemalloc

from twisted.internet import defer, task

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import PartitionState, SegmentRef
from kafscale.storage.partition_log import LogSettings, PartitionLog

TOPIC = "events"


def segment(base):
    return SegmentRef(base, base, 1_700_000_000_000 + base, 1024, 1,
                      f"{TOPIC}/0123456789abcdef0123456789abcdef/0/segment-{base:020d}-1-{base}.kfs")


def partition_log(state):
    return PartitionLog(state, topic_id=None, metadata=None, objects=None, cache=None, budget=None, holder=None,
                        settings=LogSettings(), reactor=None)


def median(values):
    return sorted(values)[len(values) // 2]


def in_memory(segments, commits):
    refs = [segment(base) for base in range(segments)]
    tracemalloc.start()
    state = PartitionState(TOPIC, 0, 1, 0, segments, tuple(refs), ((1, 0),))
    log = partition_log(state)
    held = tracemalloc.get_traced_memory()[0]
    del refs

    def commit(number):
        log._set_state(log.state.with_segment(segment(segments + number)))

    peaks = []
    for number in range(5):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        commit(number)
        peaks.append(tracemalloc.get_traced_memory()[1] - before)
    tracemalloc.stop()
    times = []
    for number in range(5, 5 + commits):
        started = time.perf_counter()
        commit(number)
        times.append(time.perf_counter() - started)
    seconds, peak = median(times), median(peaks)
    print(f"in memory, {segments:,} segments: the state holds {held / 2**20:.1f} MiB beyond the entries;"
          f" a commit takes {seconds * 1000:.3f} ms and allocates {peak / 2**20:.2f} MiB")


async def embedded(reactor, segments, commits):
    directory = tempfile.mkdtemp(prefix="kafscale-bench-manifest-")
    path = os.path.join(directory, "metadata.sqlite")
    store = EmbeddedMetadataStore(path, reactor=reactor)
    store.startService()
    try:
        await store.create_topic(TOPIC, 1)
        await store.claim_partition(TOPIC, 0, 0)
    finally:
        await store.stopService()
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO segments (topic, partition, base_offset, last_offset, max_timestamp, size,"
                       " count, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       ((TOPIC, 0, s.base_offset, s.last_offset, s.max_timestamp, s.size, s.count, s.key)
                        for s in map(segment, range(segments))))
        db.execute("UPDATE partitions SET next_offset = ?", (segments,))
    db.close()
    store = EmbeddedMetadataStore(path, reactor=reactor)
    store.startService()
    try:
        state = await store.partition_state(TOPIC, 0)
        log = partition_log(state)
        times = []
        for number in range(commits):
            base = segments + number
            started = time.perf_counter()
            log._set_state(await store.commit_segment(TOPIC, 0, 1, base, segment(base)))
            times.append(time.perf_counter() - started)
        print(f"embedded store, {segments:,} segments: a commit takes {median(times) * 1000:.2f} ms"
              " (median, wall clock)")
    finally:
        await store.stopService()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--commits", type=int, default=50)
    args = parser.parse_args()
    in_memory(args.segments, args.commits)
    task.react(lambda reactor: defer.Deferred.fromCoroutine(embedded(reactor, args.segments, args.commits)))


if __name__ == "__main__":
    main()
