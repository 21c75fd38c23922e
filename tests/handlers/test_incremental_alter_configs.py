"""IncrementalAlterConfigs through both admin clients and the wire: atomic
changes, refusals that say why and change nothing, validate_only."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from kafka.admin import ConfigResource as PyConfigResource

from kafscale.handlers.config_resources import ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.configs import BROKER, TOPIC, ConfigsTestCase, python_admin, wire_request

GROUP_CONFIG = 8  # DescribeConfigs' source of a config set on a group


class IncrementalAlterConfigsTests(ConfigsTestCase):
    async def test_set_and_delete_apply_atomically(self):
        resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
            ConfigEntry("retention.bytes", "1000000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ])
        self.assertIsNone(await in_thread(self.incremental, resource))
        self.assertEqual(self.broker.topics["tuned"].configs, {"segment.bytes": "4096", "retention.bytes": "1000000"})
        stored = await self.broker.metadata.topics()
        self.assertEqual(stored["tuned"].configs, {"segment.bytes": "4096", "retention.bytes": "1000000"})
        # The partition log follows the new settings at once.
        resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
            ConfigEntry("segment.bytes", "65536", incremental_operation=AlterConfigOpType.SET)])
        self.assertIsNone(await in_thread(self.incremental, resource))
        self.assertEqual(self.broker.logs["tuned", 0].settings.segment_bytes, 65536)

    async def test_unknown_cleanup_policy_is_refused_saying_why(self):
        for operation, value in [(AlterConfigOpType.SET, "shred"), (AlterConfigOpType.APPEND, "shred"),
                                 (AlterConfigOpType.SET, "compact,compact")]:
            resource = ConfigResource(TOPIC, "plain", incremental_configs=[
                ConfigEntry("cleanup.policy", value, incremental_operation=operation)])
            error = await in_thread(self.incremental, resource)
            self.assertEqual(error.code(), KafkaError.INVALID_CONFIG)
            self.assertIn("not a list of distinct cleanup policies", error.str())
        self.assertEqual(self.broker.topics["plain"].configs, {})

    async def test_compaction_is_appended_and_subtracted(self):
        for operation, policy in [(AlterConfigOpType.APPEND, "delete,compact"),
                                  (AlterConfigOpType.SUBTRACT, "delete")]:
            resource = ConfigResource(TOPIC, "plain", incremental_configs=[
                ConfigEntry("cleanup.policy", "compact", incremental_operation=operation)])
            self.assertIsNone(await in_thread(self.incremental, resource))
            self.assertEqual(self.broker.topics["plain"].configs, {"cleanup.policy": policy})
            # The partition log follows the policy at once.
            self.assertEqual(self.broker.logs["plain", 0].settings.compaction is not None, policy != "delete")

    async def test_invalid_changes_change_nothing(self):
        cases = [
            ("no.such.config", "1", AlterConfigOpType.SET, "unknown topic config"),
            ("retention.ms", "soon", AlterConfigOpType.SET, "not a whole number"),
            ("segment.bytes", "10", AlterConfigOpType.SET, "below the minimum 1024"),
            ("min.insync.replicas", "0", AlterConfigOpType.SET, "below the minimum 1"),
            ("compression.type", "brotli", AlterConfigOpType.SET, "is not one of"),
            ("message.timestamp.type", "Now", AlterConfigOpType.SET, "is not one of"),
            ("compression.zstd.level", "23", AlterConfigOpType.SET, "above the maximum 22"),
            ("leader.replication.throttled.replicas", "0-1", AlterConfigOpType.SET, "[PartitionId]:[BrokerId]"),
            ("retention.ms", "5", AlterConfigOpType.APPEND, "not a list"),
            ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT, "not a list of distinct cleanup policies"),
            ("max.compaction.lag.ms", "0", AlterConfigOpType.SET, "below the minimum 1"),
        ]
        for name, value, operation, why in cases:
            resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
                ConfigEntry("retention.bytes", "1", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry(name, value, incremental_operation=operation),
            ])
            error = await in_thread(self.incremental, resource)
            self.assertEqual(error.code(), KafkaError.INVALID_CONFIG, name)
            self.assertIn(why, error.str())
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "60000", "segment.bytes": "4096"})

    async def test_compaction_lags_are_checked_together(self):
        lags = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("max.compaction.lag.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        self.assertIsNone(await in_thread(self.incremental, lags))
        later = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("min.compaction.lag.ms", "5000", incremental_operation=AlterConfigOpType.SET)])
        error = await in_thread(self.incremental, later)
        self.assertEqual(error.code(), KafkaError.INVALID_CONFIG)
        self.assertIn("min.compaction.lag.ms: above max.compaction.lag.ms", error.str())
        self.assertEqual(self.broker.topics["plain"].configs, {"max.compaction.lag.ms": "1000"})

    async def test_validate_only_changes_nothing(self):
        resource = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        self.assertIsNone(await in_thread(self.incremental, resource, True))
        self.assertEqual(self.broker.topics["plain"].configs, {})
        invalid = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("cleanup.policy", "shred", incremental_operation=AlterConfigOpType.SET)])
        self.assertEqual((await in_thread(self.incremental, invalid, True)).code(), KafkaError.INVALID_CONFIG)

    async def test_unknown_topic_and_static_broker(self):
        missing = ConfigResource(TOPIC, "missing", incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        self.assertEqual((await in_thread(self.incremental, missing)).code(), KafkaError.UNKNOWN_TOPIC_OR_PART)
        broker = ConfigResource(BROKER, "3", incremental_configs=[
            ConfigEntry("num.partitions", "5", incremental_operation=AlterConfigOpType.SET)])
        error = await in_thread(self.incremental, broker)
        self.assertEqual(error.code(), KafkaError.INVALID_REQUEST)
        self.assertIn("Cannot update these configs dynamically: num.partitions", error.str())

    async def test_kafka_python(self):
        admin = await python_admin(self, self.bootstrap)
        result = await in_thread(admin.alter_configs, [
            PyConfigResource("TOPIC", "plain", {"retention.ms": "120000", "cleanup.policy": ("APPEND", "delete")}),
        ])
        self.assertEqual(result, {"topic": {"plain": "OK"}})
        self.assertEqual(self.broker.topics["plain"].configs, {"retention.ms": "120000", "cleanup.policy": "delete"})
        refused = await in_thread(admin.alter_configs, [
            PyConfigResource("TOPIC", "plain", {"cleanup.policy": "shred"}),
            PyConfigResource("TOPIC", "tuned", {"no.such.config": "1"}),
        ], raise_on_unknown=False)
        self.assertIn("InvalidConfigurationError", refused["topic"]["plain"])
        self.assertIn("not a list of distinct cleanup policies", refused["topic"]["plain"])
        self.assertIn("unknown topic config 'no.such.config'", refused["topic"]["tuned"])
        dry = await in_thread(admin.alter_configs, [PyConfigResource("TOPIC", "plain", {"retention.ms": "1"})],
                              validate_only=True)
        self.assertEqual(dry, {"topic": {"plain": "OK"}})
        self.assertEqual(self.broker.topics["plain"].configs["retention.ms"], "120000")
        await in_thread(admin.reset_configs, [PyConfigResource("TOPIC", "plain", ["retention.ms"])])
        self.assertEqual(self.broker.topics["plain"].configs, {"cleanup.policy": "delete"})


# A Kafka 4 broker's default topic configs, as its DescribeConfigs lists them
# for a topic nobody tuned (Kafka's own defaults, segment.bytes included).
KAFKA_4_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.gzip.level": "-1",
    "compression.lz4.level": "9",
    "compression.type": "producer",
    "compression.zstd.level": "3",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "follower.replication.throttled.replicas": "",
    "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "9223372036854775807",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}

# What a Kafka 3 broker lists besides, removed in Kafka 4: configs copied
# from an older cluster carry them.
KAFKA_3_ONLY_TOPIC_DEFAULTS = {
    "message.downconversion.enable": "true",
    "message.format.version": "3.0-IV1",
    "message.timestamp.difference.max.ms": "9223372036854775807",
}


class KafkaDefaultsTests(ConfigsTestCase):
    """A Kafka broker's full default topic config set, copied onto a topic,
    applies, and reads back as set on the topic."""

    async def test_kafka_4_defaults_through_confluent_kafka(self):
        resource = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in KAFKA_4_TOPIC_DEFAULTS.items()])
        self.assertIsNone(await in_thread(self.incremental, resource))
        self.assertEqual(self.broker.topics["plain"].configs, KAFKA_4_TOPIC_DEFAULTS)
        described = await in_thread(self.describe, ConfigResource(TOPIC, "plain"))
        self.assertEqual({name: entry.value for name, entry in described.items()}, KAFKA_4_TOPIC_DEFAULTS)
        self.assertEqual({entry.source for entry in described.values()}, {ConfigSource.DYNAMIC_TOPIC_CONFIG.value})
        self.assertEqual(self.broker.logs["plain", 0].settings.segment_bytes, 1073741824)

    async def test_kafka_3_defaults_through_kafka_python(self):
        admin = await python_admin(self, self.bootstrap)
        everything = {**KAFKA_4_TOPIC_DEFAULTS, **KAFKA_3_ONLY_TOPIC_DEFAULTS}
        result = await in_thread(admin.alter_configs, [PyConfigResource("TOPIC", "tuned", everything)],
                                 raise_on_unknown=False)
        self.assertEqual(result, {"topic": {"tuned": "OK"}})
        self.assertEqual(self.broker.topics["tuned"].configs, everything)
        described = await in_thread(self.describe, ConfigResource(TOPIC, "tuned"))
        self.assertEqual({name: entry.value for name, entry in described.items()}, everything)


class GroupConfigsTests(ConfigsTestCase):
    """KIP-848's group configs, set, validated and described as a Kafka 4
    broker does, through kafka-python and the wire."""

    def describe_group(self, name, include_synonyms=False):
        answer = wire_request(self.bootstrap, ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": ResourceType.GROUP, "resource_name": name,
                           "configuration_keys": None}],
            "include_synonyms": include_synonyms, "include_documentation": False})["results"][0]
        self.assertEqual(answer["error_code"], ErrorCode.NONE)
        return {c["name"]: (c["value"], c["config_source"], [(s["name"], s["value"]) for s in c["synonyms"]])
                for c in answer["configs"]}

    async def test_set_described_and_deleted(self):
        defaults = await in_thread(self.describe_group, "billing", True)
        self.assertEqual(defaults["consumer.session.timeout.ms"],
                         ("45000", ConfigSource.DEFAULT_CONFIG.value,
                          [("group.consumer.session.timeout.ms", "45000")]))
        self.assertEqual(defaults["share.auto.offset.reset"], ("latest", ConfigSource.DEFAULT_CONFIG.value, []))
        self.assertEqual(len(defaults), 6)

        admin = await python_admin(self, self.bootstrap)
        result = await in_thread(admin.alter_configs, [PyConfigResource("GROUP", "billing", {
            "consumer.session.timeout.ms": "50000", "share.auto.offset.reset": "earliest"})])
        self.assertEqual(result, {"group": {"billing": "OK"}})
        described = await in_thread(self.describe_group, "billing")
        self.assertEqual(described["consumer.session.timeout.ms"][:2], ("50000", GROUP_CONFIG))
        self.assertEqual(described["share.auto.offset.reset"][:2], ("earliest", GROUP_CONFIG))
        self.assertEqual(await self.broker.metadata.group_configs("billing"),
                         {"consumer.session.timeout.ms": "50000", "share.auto.offset.reset": "earliest"})
        await in_thread(admin.alter_configs, [PyConfigResource("GROUP", "billing", {
            "share.auto.offset.reset": ("DELETE", None)})])
        self.assertEqual(await self.broker.metadata.group_configs("billing"), {"consumer.session.timeout.ms": "50000"})

    async def test_refused_as_kafka_refuses(self):
        def alter(*configs):
            return wire_request(self.bootstrap, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
                "resources": [{"resource_type": ResourceType.GROUP, "resource_name": "billing", "configs": [
                    {"name": name, "config_operation": 0, "value": value} for name, value in configs]}],
                "validate_only": False})["responses"][0]

        cases = [
            ((("consumer.session.timeout.ms", "1000"),), "below the minimum 45000"),
            ((("consumer.heartbeat.interval.ms", "20000"),), "above the maximum 15000"),
            ((("share.auto.offset.reset", "none"),), "is not one of"),
            ((("retention.ms", "1"),), "unknown group config 'retention.ms'"),
        ]
        for configs, why in cases:
            answer = await in_thread(alter, *configs)
            self.assertEqual(answer["error_code"], ErrorCode.INVALID_CONFIG, configs)
            self.assertIn(why, answer["error_message"])
        self.assertEqual(await self.broker.metadata.group_configs("billing"), {})
        # Legacy AlterConfigs does not address groups, as in Kafka.
        legacy = await in_thread(wire_request, self.bootstrap, ApiKey.ALTER_CONFIGS, 2, {
            "resources": [{"resource_type": ResourceType.GROUP, "resource_name": "billing", "configs": [
                {"name": "consumer.session.timeout.ms", "value": "50000"}]}], "validate_only": False})
        self.assertEqual(legacy["responses"][0]["error_code"], ErrorCode.INVALID_REQUEST)
