"""KafscaleTopics reconciled through the Kafka Admin API.

`plan` is pure: (the topic wanted, the topic as the cluster has it) ->
the admin actions that make them agree, and the problems that no action
can fix (a partition count cannot shrink, a topic cannot be renamed).
`KafkaTopics` observes a topic and carries actions out with
confluent-kafka's AdminClient; its calls block (run them in a thread).
The resource is the truth: a config set behind its back is set back, one
it does not name is reset to its default, partitions added behind its
back are reported, since they cannot be taken away."""

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict = field(default_factory=dict)  # name -> value, as strings


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it: its configs set on the topic itself
    (not the defaults)."""

    name: str
    topic_id: str
    partitions: int
    configs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CreateTopic:
    spec: TopicSpec


@dataclass(frozen=True)
class AddPartitions:
    name: str
    total: int


@dataclass(frozen=True)
class AlterTopicConfigs:
    name: str
    set: dict  # name -> value
    reset: tuple  # names back to their defaults


@dataclass(frozen=True)
class DeleteTopic:
    name: str


@dataclass(frozen=True)
class TopicPlan:
    actions: tuple = ()
    problems: tuple = ()


def config_value(value):
    """A config value of the resource as Kafka spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spec_of(resource):
    """The TopicSpec of a KafscaleTopic (a dict, defaults applied)."""
    spec = resource["spec"]
    return TopicSpec(
        name=spec.get("topicName") or resource["metadata"]["name"],
        partitions=spec.get("partitions", 1),
        configs={name: config_value(value) for name, value in (spec.get("config") or {}).items()},
    )


def plan(wanted, observed, managed_name=None):
    """-> TopicPlan turning ``observed`` (TopicState, None if there is no
    such topic) into ``wanted`` (TopicSpec). ``managed_name``: the topic
    this resource made before (its status), if any."""
    if managed_name is not None and managed_name != wanted.name:
        return TopicPlan(problems=(f"topicName cannot change (from {managed_name!r} to {wanted.name!r});"
                                   " delete the resource and make a new one",))
    if observed is None:
        return TopicPlan(actions=(CreateTopic(wanted),))
    actions, problems = [], []
    if observed.partitions < wanted.partitions:
        actions.append(AddPartitions(wanted.name, wanted.partitions))
    elif observed.partitions > wanted.partitions:
        problems.append(f"the topic has {observed.partitions} partitions, more than the {wanted.partitions}"
                        " asked for: partitions cannot be removed")
    changed = {name: value for name, value in wanted.configs.items() if observed.configs.get(name) != value}
    reset = tuple(sorted(name for name in observed.configs if name not in wanted.configs))
    if changed or reset:
        actions.append(AlterTopicConfigs(wanted.name, changed, reset))
    return TopicPlan(actions=tuple(actions), problems=tuple(problems))


def deletion(name, observed, policy):
    """-> the actions when the resource is deleted under ``policy``."""
    if policy == "orphan" or observed is None:
        return ()
    return (DeleteTopic(name),)


class TopicError(Exception):
    """The cluster refused an action or could not be asked."""


class KafkaTopics:
    """Observes topics and applies plans through ``admin`` (a
    confluent_kafka AdminClient). Blocking."""

    def __init__(self, admin, timeout=30.0):
        self.admin = admin
        self.timeout = timeout

    def observe(self, name):
        """-> TopicState of ``name``, or None if there is none. (Through
        DescribeTopics: a Metadata request naming the topic could create it
        on a broker that auto-creates topics.)"""
        description = self._unless_unknown(name, self.admin.describe_topics(
            TopicCollection([name]), request_timeout=self.timeout)[name])
        if description is None:
            return None
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        # None too when deleted between the two requests: as gone as if never seen.
        entries = self._unless_unknown(name, self.admin.describe_configs(
            [resource], request_timeout=self.timeout)[resource])
        if entries is None:
            return None
        configs = {entry.name: entry.value for entry in entries.values()
                   if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
        return TopicState(name, str(description.topic_id), len(description.partitions), configs)

    def apply(self, action):
        if isinstance(action, CreateTopic):
            spec = action.spec
            topic = NewTopic(spec.name, num_partitions=spec.partitions, config=dict(spec.configs))
            self._result(self.admin.create_topics([topic], request_timeout=self.timeout)[spec.name])
        elif isinstance(action, AddPartitions):
            self._result(self.admin.create_partitions([NewPartitions(action.name, action.total)],
                                                      request_timeout=self.timeout)[action.name])
        elif isinstance(action, AlterTopicConfigs):
            entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                       for name, value in sorted(action.set.items())]
            entries += [ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
                        for name in action.reset]
            resource = ConfigResource(ConfigResource.Type.TOPIC, action.name, incremental_configs=entries)
            self._result(self.admin.incremental_alter_configs([resource], request_timeout=self.timeout)[resource])
        elif isinstance(action, DeleteTopic):
            self._result(self.admin.delete_topics([action.name], request_timeout=self.timeout)[action.name])
        else:
            raise TypeError(action)

    def reconcile(self, wanted, managed_name=None):
        """Observe, plan and apply: -> (the TopicPlan carried out, the
        TopicState after it)."""
        done = plan(wanted, self.observe(wanted.name), managed_name)
        for action in done.actions:
            self.apply(action)
        return done, self.observe(wanted.name)

    def delete(self, name, policy):
        for action in deletion(name, self.observe(name), policy):
            self.apply(action)

    def _unless_unknown(self, name, future):
        """-> ``future``'s result, or None when the topic ``name`` is unknown."""
        try:
            return future.result(timeout=self.timeout)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            raise TopicError(f"topic {name}: {_text(error)}") from error
        except TimeoutError as error:
            raise TopicError("the cluster did not answer in time") from error

    def _result(self, future):
        try:
            return future.result(timeout=self.timeout)
        except KafkaException as error:
            raise TopicError(_text(error)) from error
        except TimeoutError as error:
            raise TopicError("the cluster did not answer in time") from error


def _text(error):
    return error.args[0].str() if error.args and isinstance(error.args[0], KafkaError) else str(error)
