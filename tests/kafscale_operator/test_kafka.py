from twisted.trial import unittest

from kafscale_operator.kafka import NoListenerForOperator, client_settings
from tests.support.kubernetes import cluster


class ClientSettingsTests(unittest.TestCase):
    def test_a_plaintext_cluster(self):
        self.assertEqual(client_settings(cluster()), {
            "bootstrap.servers": "events-bootstrap.streaming.svc:9092", "security.protocol": "PLAINTEXT"})

    def test_sasl_over_tls_with_the_clusters_ca(self):
        resource = cluster(tls={"secretName": "t"}, listeners=[
            {"name": "certs", "port": 9093, "authentication": {"type": "tls"}},
            {"name": "scram", "port": 9094, "tls": True, "authentication": {"type": "scram-sha-512"}}])
        settings = client_settings(resource, ("operator", "pw"), "-----BEGIN CERTIFICATE-----")
        self.assertEqual(settings, {
            "bootstrap.servers": "events-bootstrap.streaming.svc:9094", "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "operator", "sasl.password": "pw",
            "ssl.ca.pem": "-----BEGIN CERTIFICATE-----"})

    def test_what_the_operator_cannot_use(self):
        only_certificates = cluster(tls={"secretName": "t"}, listeners=[
            {"name": "certs", "port": 9093, "authentication": {"type": "tls"}}])
        self.assertRaises(NoListenerForOperator, client_settings, only_certificates)
        no_credentials = cluster(listeners=[{"name": "scram", "port": 9094, "authentication": {"type": "scram-sha-256"}}])
        self.assertRaises(NoListenerForOperator, client_settings, no_credentials)
