"""AlterConfigs, which replaces a topic's configs, through both admin
clients and the wire."""

from confluent_kafka.admin import ConfigResource
from kafka.admin import ConfigResource as PyConfigResource

from kafscale.handlers.config_resources import ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.clients import result_or_error
from tests.support.configs import TOPIC, ConfigsTestCase, python_admin, wire_request


class AlterConfigsTests(ConfigsTestCase):
    async def test_replaces_every_topic_config(self):
        resource = ConfigResource(TOPIC, "tuned", set_config={"retention.bytes": "2048"})
        self.assertIsNone(await in_thread(lambda: result_or_error(self.admin.alter_configs([resource])[resource])))
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.bytes": "2048"})

    async def test_kafka_python_legacy_keeps_what_it_resends(self):
        admin = await python_admin(self, self.bootstrap)
        result = await in_thread(admin.alter_configs, [PyConfigResource("TOPIC", "tuned", {"retention.ms": "1000"})],
                                 incremental=False)
        self.assertEqual(result, {"topic": {"tuned": "OK"}})
        # kafka-python re-sends the other modified configs, as AlterConfigs needs.
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "1000", "segment.bytes": "4096"})

    async def test_errors(self):
        def ask(validate_only):
            return wire_request(self.bootstrap, ApiKey.ALTER_CONFIGS, 2, {"resources": [
                {"resource_type": ResourceType.TOPIC, "resource_name": "plain",
                 "configs": [{"name": "cleanup.policy", "value": "shred"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "tuned",
                 "configs": [{"name": "retention.ms", "value": "1"}, {"name": "retention.ms", "value": "2"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "missing", "configs": []},
                {"resource_type": ResourceType.BROKER, "resource_name": "3",
                 "configs": [{"name": "no.such.setting", "value": "1"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "plain2", "configs": []},
            ], "validate_only": validate_only})["responses"]

        for validate_only in (True, False):
            responses = await in_thread(ask, validate_only)
            self.assertEqual([r["error_code"] for r in responses], [
                ErrorCode.INVALID_CONFIG, ErrorCode.INVALID_REQUEST, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                ErrorCode.INVALID_CONFIG, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            ])
        self.assertIn("named more than once", responses[1]["error_message"])
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "60000", "segment.bytes": "4096"})
