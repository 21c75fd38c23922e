"""Certificates for tests, made with ``cryptography``: a CA, broker and
client certificates signed by it, and ones that must be refused (expired,
from another CA)."""

import datetime
import ipaddress
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name, organization="Kafscale tests"):
    """A subject of ``organization`` and ``common_name`` (none when None)."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
                     + ([] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CertificateAuthority:
    """A CA whose certificates land as PEM files in ``directory``."""

    def __init__(self, directory, name="Kafscale test CA"):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self._write(f"{name.replace(' ', '-')}.pem",
                                   self.certificate.public_bytes(serialization.Encoding.PEM))

    def _write(self, name, data):
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def issue(self, common_name, server=False, expired=False, without_common_name=False):
        """-> (certificate file, key file) for ``common_name`` (in its
        subject unless ``without_common_name``, its file name regardless); a
        server certificate names 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired \
            else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
        builder = (
            x509.CertificateBuilder().subject_name(_name(None if without_common_name else common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = f"{common_name}{'-expired' if expired else ''}"
        return (self._write(f"{stem}.pem", certificate.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{stem}.key", _pem_key(key)))


def make_tls(test):
    """-> (the test's CA, another CA no one trusts), in a fresh directory."""
    directory = tempfile.mkdtemp(prefix="kafscale-tls-")
    return CertificateAuthority(directory), CertificateAuthority(directory, "Untrusted CA")


async def start_secure_broker(test, tls=None, *args):
    """Start an in-process broker with a listener of each security protocol
    on free loopback ports (TLS ones with a certificate from ``tls``, the
    test's CertificateAuthority), and ``args`` as further options.
    -> (the service tree, {listener name: "127.0.0.1:port"})."""
    from tests.support.brokers import free_port

    names = ("PLAINTEXT", "SASL_PLAINTEXT") + (("SSL", "SASL_SSL") if tls else ())
    bootstraps = {name: f"127.0.0.1:{free_port()}" for name in names}
    options = ["--data-dir", tempfile.mkdtemp(prefix="kafscale-test-"),
               "--listeners", ",".join(f"{name}://{address}" for name, address in bootstraps.items())]
    if tls:
        cert, key = tls.issue("broker", server=True)
        options += ["--tls-cert", cert, "--tls-key", key, "--tls-ca", tls.ca_file]
    from kafscale.tap import Options, makeService

    parsed = Options()
    parsed.parseOptions([*options, *args])
    service = makeService(parsed)
    service.startService()
    test.addCleanup(service.stopService)
    await service.getServiceNamed("listener").listening
    return service, bootstraps


async def add_user(metadata, name, password, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512")):
    """Store ``name``'s credentials for ``mechanisms`` in ``metadata``."""
    from twisted.internet.threads import deferToThread

    from kafscale.security.scram import credential_from_password

    for mechanism in mechanisms:
        await metadata.set_scram_credential(name, await deferToThread(credential_from_password, mechanism, password))
