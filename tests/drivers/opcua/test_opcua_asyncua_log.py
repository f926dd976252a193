"""asyncua's client lines about a connection that is already gone are dropped (the driver
reports the fault once, as a state change), other lines are kept, and with debug logging
every line is kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from drivers.opcua.asyncua_log import drop_lines_reported_by_driver

UA_CLIENT = "asyncua.client.ua_client.UaClient"
UA_SESSION = "asyncua.client.ua_session.UaSession"


@pytest.fixture
def asyncua_level() -> Iterator[logging.Logger]:
    """The "asyncua" logger at WARNING (the daemon's default), restored afterwards."""
    logger = logging.getLogger("asyncua")
    before = logger.level
    logger.setLevel(logging.WARNING)
    drop_lines_reported_by_driver()
    yield logger
    logger.setLevel(before)


def _crash(exc: Exception) -> None:
    try:
        raise exc
    except type(exc):
        logging.getLogger(UA_SESSION).exception("Publish iteration crashed; retrying in 1s")


def test_lines_about_an_already_closed_connection_are_dropped(
    asyncua_level: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger(UA_CLIENT).warning("close_secure_channel was called but connection is closed")
    logging.getLogger(UA_SESSION).warning("close_session was called but connection is closed")
    _crash(ConnectionError("Connection is closed"))
    assert caplog.records == []


def test_other_asyncua_lines_are_kept(
    asyncua_level: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    _crash(ValueError("a bug, not a lost connection"))
    logging.getLogger(UA_SESSION).warning("Received data for unknown subscription %s", 7)
    assert [r.getMessage() for r in caplog.records] == [
        "Publish iteration crashed; retrying in 1s",
        "Received data for unknown subscription 7",
    ]


def test_every_line_is_kept_with_debug_logging(
    asyncua_level: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    asyncua_level.setLevel(logging.DEBUG)
    logging.getLogger(UA_CLIENT).warning("close_secure_channel was called but connection is closed")
    _crash(ConnectionError("Connection is closed"))
    assert len(caplog.records) == 2
