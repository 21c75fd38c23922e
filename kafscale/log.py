"""Logging for the broker: every kafscale logger publishes through one
level filter, so ``--log-level`` governs our messages without touching the
observer twistd installs."""

import json
import time
from datetime import datetime, timezone

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import implementer

_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_observer = FilteringLogObserver(globalLogPublisher, [_levels])


def logger(namespace: str) -> Logger:
    return Logger(namespace=namespace, observer=_observer)


def set_level(name: str) -> None:
    """Set the lowest level logged, by name: debug, info, warn, error, critical."""
    _levels.defaultLogLevel = LogLevel.levelWithName(name)


@implementer(ILogObserver)
class JSONLines:
    """An ILogObserver writing each event to ``out`` as one JSON object per
    line: time (ISO 8601, UTC), level, namespace, the formatted message,
    the event's own fields where JSON can hold them, and the traceback of a
    failure. What log collectors (Loki, Elasticsearch, CloudWatch) ingest
    without parsing rules."""

    def __init__(self, out):
        self._out = out

    def __call__(self, event):
        record = {
            "time": datetime.fromtimestamp(event.get("log_time", time.time()), timezone.utc).isoformat(),
            "level": event["log_level"].name if event.get("log_level") else "info",
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        for name, value in event.items():
            if not name.startswith("log_") and name not in record and isinstance(value, _PLAIN):
                record[name] = value
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = failure.getTraceback()
        try:
            self._out.write(json.dumps(record, default=str) + "\n")
            self._out.flush()
        except (OSError, ValueError):
            # Nowhere left to say it.
            pass


# Field values written as themselves; anything else is in the message.
_PLAIN = (str, int, float, bool, type(None))
