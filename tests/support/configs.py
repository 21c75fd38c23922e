"""Topic and broker configs through a running broker: the admin clients,
a bare wire request, and a test case with two topics, one of them tuned."""

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka.admin import KafkaAdminClient
from twisted.trial import unittest

from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from tests.support.wire import Connection


TOPIC = ConfigResource.Type.TOPIC

BROKER = ConfigResource.Type.BROKER


def confluent_admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


async def python_admin(test, bootstrap):
    admin = await in_thread(KafkaAdminClient, bootstrap_servers=bootstrap, request_timeout_ms=10000)
    test.addCleanup(in_thread, admin.close)
    return admin


def wire_request(bootstrap, api_key, version, body):
    connection = Connection(bootstrap)
    try:
        return connection.request(api_key, version, body)
    finally:
        connection.close()


class ConfigsTestCase(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--node-id", "3", "--num-partitions", "2")
        self.admin = confluent_admin(self.bootstrap)

        def create():
            futures = self.admin.create_topics([
                NewTopic("plain", 1),
                NewTopic("tuned", 1, config={"retention.ms": "60000", "segment.bytes": "4096"}),
            ])
            for future in futures.values():
                future.result(20)

        await in_thread(create)

    def describe(self, resource):
        return result_or_error(self.admin.describe_configs([resource])[resource])

    def incremental(self, resource, validate_only=False):
        return result_or_error(
            self.admin.incremental_alter_configs([resource], validate_only=validate_only)[resource])
