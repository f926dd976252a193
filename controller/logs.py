"""Logging set up once: structlog, JSON lines under systemd (no TTY), key=value on a terminal.

Library loggers (pymodbus, asyncua, aiomqtt) go through the same renderer, at WARNING unless
debug is asked for: they log every retry at INFO, which would drown the daemon's own lines.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_NOISY = ("pymodbus", "asyncua", "aiomqtt", "paho")
# pymodbus logs an ERROR for every frame it skips (a device answering garbage or with the wrong
# transaction id: thousands of lines an hour); the Modbus driver reports the same fault once,
# as a device state change with its reason. Its lines come back with log_level: debug.
_REPORTED_BY_DRIVERS = ("pymodbus",)


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging; `json` defaults to "stderr is not a TTY"."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_log_level(level)


def set_log_level(level: str) -> None:
    """The daemon's level, and the libraries' (quiet unless debug); a reload changes it."""
    numeric = logging.getLevelName(level.upper())
    logging.getLogger().setLevel(numeric)
    for name in _NOISY:
        quiet = logging.CRITICAL if name in _REPORTED_BY_DRIVERS else logging.WARNING
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else quiet)


def _identity(_logger: Any, _name: str, event_dict: Any) -> Any:
    return event_dict
