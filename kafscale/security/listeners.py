"""Kafka's listener syntax: ``SASL_SSL://0.0.0.0:9093,PLAINTEXT://127.0.0.1:9092``."""

from dataclasses import dataclass

from kafscale.security.sasl import SaslAuthentication

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True, slots=True)
class Listener:
    """One listener: its name, which is also its security protocol (Kafka's
    default listener.security.protocol.map), and its address."""

    name: str
    host: str
    port: int

    @property
    def tls(self):
        return self.name in ("SSL", "SASL_SSL")

    @property
    def sasl(self):
        return self.name in ("SASL_PLAINTEXT", "SASL_SSL")

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


def parse_listeners(text):
    """-> a tuple of Listeners, in the order given. Raises ValueError for an
    unknown protocol, a bad address or the same name twice."""
    listeners = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, separator, address = part.partition("://")
        name = name.upper()
        if not separator or name not in SECURITY_PROTOCOLS:
            raise ValueError(f"{part!r}: want PROTOCOL://HOST:PORT, PROTOCOL one of {', '.join(SECURITY_PROTOCOLS)}")
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{part!r}: want PROTOCOL://HOST:PORT")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        listeners.append(Listener(name, host, int(port)))
    names = [listener.name for listener in listeners]
    if not listeners:
        raise ValueError("no listener given")
    if len(set(names)) != len(names):
        raise ValueError(f"each listener name may appear once: {text!r}")
    return tuple(listeners)


PRE_AUTHENTICATION_MAX_FRAME = 512 << 10
"""The largest frame a connection may send before it has authenticated
(Kafka's sasl.server.max.receive.size)."""


@dataclass(frozen=True, slots=True)
class ListenerSecurity:
    """What a listener asks of its connections: its ``name``; SASL with
    ``sasl_mechanisms`` (empty: no SASL) checked against ``credentials``
    (an IScramCredentialStore); with TLS client certificates, the
    ``subject_mapping`` (a SubjectMapping) naming the principal of a client
    that presents one."""

    name: str = "PLAINTEXT"
    sasl_mechanisms: tuple[str, ...] = ()
    credentials: object = None
    subject_mapping: object = None

    def authentication(self):
        """-> a new connection's SaslAuthentication, or None without SASL."""
        if not self.sasl_mechanisms:
            return None
        return SaslAuthentication(self.sasl_mechanisms, self.credentials)
