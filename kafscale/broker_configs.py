"""Dynamic broker configs: the broker-wide defaults of topic configs that an
operator changes at runtime with AlterConfigs or IncrementalAlterConfigs on
a broker resource, as in Kafka ("" for every broker, a node id for that
broker alone, which wins).

They live in the metadata store, so every broker follows a change: this
broker's own at once, others' as the store reports them (an etcd watch, or
the embedded store's poll). Topics without a value of their own take them
(`over_defaults`, which produce and retention apply).
"""

from kafscale.metadata.following import FollowingService
from kafscale.metadata.topic_configs import DYNAMIC_BROKER_CONFIGS, check_each

ALL_BROKERS = ""
"""The resource name of the defaults every broker takes."""


class DynamicBrokerConfigs(FollowingService):
    """The dynamic broker configs in ``metadata`` (an IMetadataStore, which
    reports "broker_configs" changes to its subscribers), as they apply to
    the broker ``view`` (an IClusterView) says this is."""

    area = "broker_configs"
    what = "dynamic broker configs"

    def __init__(self, metadata, view):
        super().__init__(metadata)
        self.view = view
        self.configs = {}
        """{resource name: {broker config name: value}}, as last read (a new
        dict on every change, never changed in place)."""
        self._defaults = {}
        self._defaults_of = (None, self.configs)  # (node id, configs) they were derived from

    def _read(self):
        return self.metadata.broker_configs()

    def _keep(self, configs):
        self.configs = configs

    def of(self, resource):
        """The configs set on ``resource`` ("" or a node id's text)."""
        return self.configs.get(resource, {})

    def in_force(self):
        """-> {broker config name: (value, resource)} of the dynamic configs
        that hold on this broker, ``resource`` saying where each was set."""
        found = {name: (value, ALL_BROKERS) for name, value in self.of(ALL_BROKERS).items()}
        own = str(self.view.node_id)
        found.update((name, (value, own)) for name, value in self.of(own).items())
        return found

    def topic_defaults(self):
        """-> {topic config name: value} of the topic configs whose broker
        default was changed here (derived again only when the configs or
        this broker's node id changed: produce asks for every partition)."""
        node_id, configs = self._defaults_of
        if node_id != self.view.node_id or configs is not self.configs:
            self._defaults = {DYNAMIC_BROKER_CONFIGS[name].name: value for name, (value, _) in self.in_force().items()
                              if name in DYNAMIC_BROKER_CONFIGS}
            self._defaults_of = (self.view.node_id, self.configs)
        return self._defaults

    def over_defaults(self, configs):
        """A topic's own ``configs``, with the broker's dynamic defaults
        where it sets nothing."""
        defaults = self.topic_defaults()
        return {**defaults, **configs} if defaults else configs

    async def alter(self, resource, updates, deletions, validate_only=False):
        """Remove ``deletions`` from the resource's dynamic configs and set
        ``updates``, unless ``validate_only``. Raises InvalidConfig for a
        value Kafka refuses, MetadataError when the store fails."""
        check_each(updates, DYNAMIC_BROKER_CONFIGS, "broker")
        if validate_only:
            return
        after = await self.metadata.alter_broker_configs(resource, updates, deletions)
        configs = dict(self.configs)
        if after:
            configs[resource] = after
        else:
            configs.pop(resource, None)
        self.configs = configs
