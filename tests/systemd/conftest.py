"""Fixtures for the systemd tests: sd_notify receivers on short socket paths."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_listener import NotifyListener


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX socket paths are limited to 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="ecn-") as name:
        yield Path(name)


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(short_dir / "notify"))
    yield listener
    listener.close()


@pytest.fixture
def abstract_notify_socket() -> Iterator[NotifyListener]:
    listener = NotifyListener(f"@edgecell-test-{os.getpid()}-{time.monotonic_ns()}")
    yield listener
    listener.close()
