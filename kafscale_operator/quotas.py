"""User quotas through DescribeClientQuotas and AlterClientQuotas, which
confluent-kafka's AdminClient does not offer: kafka-python's admin
client's connection carries its own request classes for them (as its own
admin methods do). Blocking."""

from kafka.admin import KafkaAdminClient
from kafka.errors import IncompatibleBrokerVersion, for_code
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

from kafscale_operator.users import UserError

# DescribeClientQuotas' match types
MATCH_EXACT = 0


class QuotaError(UserError):
    """The cluster refused a quota request."""


class QuotasUnsupported(QuotaError):
    """The cluster does not speak the quota APIs."""


def kafka_python_settings(settings):
    """kafka-python's names for confluent-kafka ``settings``."""
    converted = {"bootstrap_servers": settings["bootstrap.servers"].split(","),
                 "security_protocol": settings.get("security.protocol", "PLAINTEXT")}
    if "sasl.mechanism" in settings:
        converted.update(sasl_mechanism=settings["sasl.mechanism"], sasl_plain_username=settings["sasl.username"],
                         sasl_plain_password=settings["sasl.password"])
    if "ssl.ca.pem" in settings:
        import ssl

        converted["ssl_context"] = ssl.create_default_context(cadata=settings["ssl.ca.pem"])
    return converted


class ClientQuotas:
    def __init__(self, admin):
        self.admin = admin

    @classmethod
    def from_settings(cls, settings):
        return cls(KafkaAdminClient(client_id="kafscale-operator", **kafka_python_settings(settings)))

    def describe(self, user):
        """-> {quota key: value} set for ``user`` itself."""
        request = DescribeClientQuotasRequest(
            components=[DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=MATCH_EXACT,
                                                                  match=user)],
            strict=True)
        try:
            response = self._send(request)
        except QuotasUnsupported:
            return {}  # a cluster without the quota APIs has no quotas (setting one says so)
        return {value.key: value.value for entry in response.entries or [] for value in entry.values}

    def alter(self, user, values, removed):
        """Set ``values`` ({key: value}) and remove the keys ``removed``."""
        entry = AlterClientQuotasRequest.EntryData
        ops = [entry.OpData(key=key, value=float(value), remove=False) for key, value in sorted(values.items())]
        ops += [entry.OpData(key=key, value=0.0, remove=True) for key in removed]
        request = AlterClientQuotasRequest(
            entries=[entry(entity=[entry.EntityData(entity_type="user", entity_name=user)], ops=ops)],
            validate_only=False)
        response = self._send(request)
        for result in response.entries:
            self._check(result.error_code, result.error_message)

    def close(self):
        self.admin.close()

    def _send(self, request):
        manager = self.admin._manager
        try:
            response = manager.run(manager.send, request)
        except IncompatibleBrokerVersion as error:
            raise QuotasUnsupported(f"the cluster does not answer {type(request).__name__[:-len('Request')]}") from error
        self._check(getattr(response, "error_code", 0), getattr(response, "error_message", None))
        return response

    @staticmethod
    def _check(code, message):
        if code:
            raise QuotaError(message or for_code(code).__name__)
