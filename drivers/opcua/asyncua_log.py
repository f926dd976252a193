"""asyncua's client logs the teardown of a connection that is already gone (a warning for every
failed connect attempt, an error with a traceback for every lost session); the driver reports
each of those faults once, as a device state change with its reason, so those lines are dropped.
With `log_level: debug` every asyncua line is kept.
"""

from __future__ import annotations

import logging

# Lines that only say "the connection was already closed", by logger: asyncua writes them when
# a session or channel is closed after the socket went away, which the driver does after every
# failed connect and every lost session.
_ALREADY_CLOSED = {
    "asyncua.client.ua_client.UaClient": frozenset(
        {"close_secure_channel was called but connection is closed"}
    ),
    "asyncua.client.ua_client.UASocketProtocol": frozenset(
        {"disconnect_socket was called but transport is None"}
    ),
    "asyncua.client.ua_session.UaSession": frozenset(
        {
            "close_session but connection wasn't established",
            "close_session was called but connection is closed",
        }
    ),
}
# Lines with a traceback that are dropped only when the exception is the lost connection.
_LOST_CONNECTION_TRACEBACKS = {
    "asyncua.client.ua_session.UaSession": frozenset({"Publish iteration crashed; retrying in 1s"}),
}
_CONNECTION_FAULTS = (ConnectionError, OSError, TimeoutError)


class _ReportedByDriver(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger("asyncua").isEnabledFor(logging.DEBUG):
            return True
        if record.msg in _ALREADY_CLOSED.get(record.name, ()):
            return False
        if record.msg in _LOST_CONNECTION_TRACEBACKS.get(record.name, ()):
            exc = record.exc_info[1] if record.exc_info else None
            return not isinstance(exc, _CONNECTION_FAULTS)
        return True


_FILTER = _ReportedByDriver()


def drop_lines_reported_by_driver() -> None:
    """Install the filter on asyncua's client loggers (idempotent)."""
    for name in (*_ALREADY_CLOSED, *_LOST_CONNECTION_TRACEBACKS):
        logging.getLogger(name).addFilter(_FILTER)
