"""TLS for the listeners: a server certificate and key, optionally a CA that
client certificates must chain to, reloaded from their files on demand (on
SIGHUP) so that rotating a certificate needs no restart."""

import signal
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from kafscale.log import logger

log = logger("kafscale.security.tls")

CLIENT_AUTH = ("none", "requested", "required")


class TLSSettingsError(ValueError):
    """Files that do not make a TLS configuration: missing, unreadable, or a
    key that does not match its certificate."""


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Where a listener's TLS material is: ``cert`` (PEM, the broker's
    certificate then any intermediates), ``key`` (PEM, unencrypted), ``ca``
    (PEM, the certificates client certificates must chain to) and whether a
    client must present one (``client_auth``: none, requested, required)."""

    cert: str
    key: str
    ca: str | None = None
    client_auth: str = "none"


def _read(path):
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as e:
        raise TLSSettingsError(f"cannot read {path}: {e.strerror}") from None


def _certificates(path):
    try:
        return [crypto.X509.from_cryptography(c) for c in x509.load_pem_x509_certificates(_read(path))]
    except ValueError as e:
        raise TLSSettingsError(f"{path}: no PEM certificate ({e})") from None


def certificate_options(files):
    """-> the Twisted CertificateOptions ``files`` describe. Raises
    TLSSettingsError."""
    chain = _certificates(files.cert)
    try:
        key = crypto.PKey.from_cryptography_key(serialization.load_pem_private_key(_read(files.key), None))
    except (ValueError, TypeError) as e:
        raise TLSSettingsError(f"{files.key}: not an unencrypted PEM private key ({e})") from None
    verify = files.client_auth != "none"
    if verify and not files.ca:
        raise TLSSettingsError("client certificates need a CA (--tls-ca) to check them against")
    try:
        options = ssl.CertificateOptions(
            privateKey=key, certificate=chain[0], extraCertChain=chain[1:],
            verify=verify, caCerts=_certificates(files.ca) if verify else None,
            requireCertificate=files.client_auth == "required",
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        )
        # Build the context now, so that a key that does not match its
        # certificate is found here rather than at the first connection.
        options.getContext()
    except SSL.Error as e:
        raise TLSSettingsError(f"{files.cert} and {files.key} do not make a TLS context: {e}") from None
    return options


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableServerTLS:
    """Server-side TLS connections from ``files``, read again by
    :meth:`reload`: new connections use the new certificate, open ones keep
    theirs."""

    def __init__(self, files):
        self.files = files
        self._options = certificate_options(files)

    def reload(self):
        """Read the files again; on failure keep the current certificate and
        log why. -> whether the new one is now in use."""
        try:
            self._options = certificate_options(self.files)
        except TLSSettingsError as e:
            log.error("keeping the current TLS certificate: {error}", error=e)
            return False
        log.info("TLS certificate reloaded from {cert}", cert=self.files.cert)
        return True

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self._options.getContext(), None)


def peer_subject(transport):
    """-> the RFC 4514 subject of the client certificate ``transport`` (a
    TLS transport whose handshake is done) was given, or None."""
    certificate = transport.getPeerCertificate()
    if certificate is None:
        return None
    return certificate.to_cryptography().subject.rfc4514_string()


class TLSListenerFactory(TLSMemoryBIOFactory):
    """TLS around a factory that may refuse a connection (buildProtocol
    returning None, as KafkaFactory does past its limits)."""

    def buildProtocol(self, addr):
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


class ReloadOnSIGHUP(Service):
    """Reloads a ReloadableServerTLS's files whenever the process gets
    SIGHUP, while the service runs."""

    def __init__(self, tls, reactor):
        self.tls = tls
        self._reactor = reactor
        self._previous = None

    def startService(self):
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self):
        super().stopService()
        signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)

    def _hangup(self, signum, frame):
        # A signal handler runs between bytecodes of the reactor thread:
        # reload on the next turn instead.
        self._reactor.callFromThread(self.tls.reload)


@implementer(IPolicyForHTTPS)
class ClientTLS:
    """TLS for the broker's own https:// connections (to etcd): the
    server's certificate must chain to ``ca`` (PEM; the system's roots
    without one) and name the host; with ``cert`` and ``key`` (PEM) the
    client presents its own. Raises TLSSettingsError."""

    def __init__(self, ca=None, cert=None, key=None):
        self._trust = ssl.trustRootFromCertificates([ssl.Certificate(c) for c in _certificates(ca)]) if ca \
            else ssl.platformTrust()
        self._client = None
        if cert:
            chain = _certificates(cert)
            try:
                pair = ssl.KeyPair(crypto.PKey.from_cryptography_key(
                    serialization.load_pem_private_key(_read(key), None)))
            except (ValueError, TypeError) as e:
                raise TLSSettingsError(f"{key}: not an unencrypted PEM private key ({e})") from None
            self._client = ssl.PrivateCertificate.fromCertificateAndKeyPair(ssl.Certificate(chain[0]), pair)

    def creatorForNetloc(self, hostname, port):
        return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trust,
                                       clientCertificate=self._client)
