"""ApiVersions advertises only what works: every version of every API it
lists answers a well-formed request with a well-formed response."""

from twisted.trial import unittest

from kafscale.protocol.messages import ApiKey, request_codec
from tests.support.brokers import in_thread, start_broker
from tests.support.sample_requests import sample_request
from tests.support.wire import Connection

TOPIC = "sample"


def sweep(bootstrap, build):
    """Send ``build(api key, version)`` for every advertised version, each on
    a fresh connection. -> the (API, version, what went wrong) that failed."""
    with_topic = {"topics": [{"name": TOPIC, "num_partitions": 1, "replication_factor": -1}],
                  "timeout_ms": 5000}
    conn = Connection(bootstrap)
    try:
        advertised = conn.request(ApiKey.API_VERSIONS, 3, {})["api_keys"]
        conn.request(ApiKey.CREATE_TOPICS, 5, with_topic)
    finally:
        conn.close()
    failed = []
    for api in advertised:
        for version in range(api["min_version"], api["max_version"] + 1):
            conn = Connection(bootstrap)
            try:
                conn.request(api["api_key"], version, build(api["api_key"], version))
                if api["api_key"] == ApiKey.DELETE_TOPICS:
                    conn.request(ApiKey.CREATE_TOPICS, 5, with_topic)
            except Exception as e:
                failed.append((ApiKey(api["api_key"]).name, version, repr(e)))
            finally:
                conn.close()
    return failed


class AdvertisedVersionsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_every_version_answers_its_minimal_request(self):
        def minimal(api_key, version):
            body = request_codec(api_key, version).default()
            if api_key == ApiKey.PRODUCE:
                body["acks"] = -1  # acks=0 is answered by silence
            return body

        self.assertEqual(await in_thread(sweep, self.bootstrap, minimal), [])

    async def test_every_version_answers_a_request_naming_a_topic(self):
        def naming_a_topic(api_key, version):
            return sample_request(api_key, version, TOPIC)

        self.assertEqual(await in_thread(sweep, self.bootstrap, naming_a_topic), [])
