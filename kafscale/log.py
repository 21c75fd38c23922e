"""Logging for the broker: every kafscale logger publishes through one
level filter, so ``--log-level`` governs our messages without touching the
observer twistd installs."""

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    globalLogPublisher,
)

_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_observer = FilteringLogObserver(globalLogPublisher, [_levels])


def logger(namespace: str) -> Logger:
    return Logger(namespace=namespace, observer=_observer)


def set_level(name: str) -> None:
    """Set the lowest level logged, by name: debug, info, warn, error, critical."""
    _levels.defaultLogLevel = LogLevel.levelWithName(name)
