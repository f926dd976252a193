"""The log level a reload changes: the daemon's own and the libraries' (quiet unless debug)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from controller.logs import configure_logging, set_log_level


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    names = ["", "pymodbus", "asyncua", "aiomqtt", "paho"]
    saved = {name: logging.getLogger(name).level for name in names}
    handlers = logging.getLogger().handlers[:]
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


def test_debug_lets_the_libraries_speak_and_info_quiets_them_again() -> None:
    configure_logging("info", json=True)
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("asyncua").level == logging.WARNING
    assert logging.getLogger("pymodbus").level == logging.CRITICAL

    set_log_level("debug")
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("asyncua").level == logging.DEBUG
    assert logging.getLogger("pymodbus").level == logging.DEBUG

    set_log_level("warning")
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("pymodbus").level == logging.CRITICAL
