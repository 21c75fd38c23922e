"""twistd plugin support: ``twistd kafscale`` options and service."""

import os

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.python import usage

from kafscale import __version__
from kafscale import log
from kafscale.broker import Broker
from kafscale.config import BrokerConfig
from kafscale.server.protocol import KafkaFactory

_DEFAULTS = BrokerConfig()


def _variable(option):
    return "KAFSCALE_" + option.upper().replace("-", "_")


class Options(usage.Options):
    """Every option falls back to an environment variable named after it
    (``--data-dir`` reads ``KAFSCALE_DATA_DIR``), which is what containers
    want, and then to the default."""

    synopsis = "[options]"
    longdesc = "Run a Kafscale broker: a Kafka-compatible broker on an object store."

    # (long, short, default, help, type); defaults are applied in
    # postOptions, after the environment has had its say.
    settings = [
        ("listen", "l", _DEFAULTS.listen, "Twisted endpoint string to listen on.", str),
        ("advertise", "a", None,
         "host:port clients should connect to (default: the listen interface and port).", str),
        ("node-id", None, _DEFAULTS.node_id, "This broker's node id.", int),
        ("rack", None, None, "Rack name reported in Metadata.", str),
        ("data-dir", "d", _DEFAULTS.data_dir, "Directory for the embedded stores.", str),
        ("max-request-size", None, _DEFAULTS.max_request_size,
         "Largest request frame accepted, in bytes (Kafka's socket.request.max.bytes).", int),
        ("log-level", None, _DEFAULTS.log_level, "debug, info, warn, error or critical.", str),
    ]
    optParameters = [
        [name, short, None, f"{text} [env {_variable(name)}, default {default}]"]
        for name, short, default, text, _ in settings
    ]

    def opt_version(self):
        print(f"kafscale {__version__}")
        raise SystemExit(0)

    def postOptions(self):
        for name, _, default, _, kind in self.settings:
            value = self[name]
            if value is None:
                value = os.environ.get(_variable(name))
            if value is None:
                self[name] = default
                continue
            try:
                self[name] = kind(value)
            except ValueError:
                raise usage.UsageError(f"{value!r} is not valid for --{name}")
        if self["log-level"] not in ("debug", "info", "warn", "error", "critical"):
            raise usage.UsageError(f"unknown log level {self['log-level']!r}")
        if self["max-request-size"] < 1024:
            raise usage.UsageError("--max-request-size must be at least 1024")
        host, port = _advertised_address(self["listen"], self["advertise"])
        self["advertised-host"], self["advertised-port"] = host, port

    def config(self):
        return BrokerConfig(
            listen=self["listen"],
            advertised_host=self["advertised-host"],
            advertised_port=self["advertised-port"],
            node_id=self["node-id"],
            rack=self["rack"],
            data_dir=self["data-dir"],
            max_request_size=self["max-request-size"],
            log_level=self["log-level"],
        )


def _advertised_address(listen, advertise):
    """Clients must be told a reachable host:port; without --advertise, use
    what the tcp listen endpoint names."""
    if advertise:
        host, _, port = advertise.rpartition(":")
        if not host or not port.isdigit():
            raise usage.UsageError(f"--advertise wants host:port, not {advertise!r}")
        return host, int(port)
    kind, _, rest = listen.partition(":")
    parts = rest.split(":")
    if kind not in ("tcp", "tcp6") or not parts[0].isdigit():
        raise usage.UsageError("--advertise is required unless --listen is a tcp:PORT endpoint")
    interface = next((p[len("interface="):] for p in parts[1:] if p.startswith("interface=")), "")
    if interface in ("", "0.0.0.0", "::"):
        interface = "127.0.0.1" if kind == "tcp" else "::1"
    return interface, int(parts[0])


def makeService(options):
    config = options.config()
    log.set_level(config.log_level)
    service = MultiService()
    broker = Broker(config)
    broker.setServiceParent(service)
    listener = strports.service(config.listen, KafkaFactory(broker, config.max_request_size))
    listener.setServiceParent(service)
    return service
