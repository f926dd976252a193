"""A reload whose loading fails in any way is a refused reload: answered False, the running
config kept, one log line with the reason (no traceback), never an exception out of reload()
(it runs in the daemon's main task: an exception there stopped the daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from controller import runtime as runtime_module
from controller.config import load_config
from controller.runtime import Runtime


def runtime_on(tmp_path: Path) -> Runtime:
    path = tmp_path / "edgecell.yaml"
    path.write_text(f"gateway: {{id: cell-1, state_dir: {tmp_path / 'state'}}}\n", "utf-8")
    return Runtime(load_config(path))


async def test_a_config_nested_too_deep_is_refused_and_the_old_one_stays(tmp_path: Path) -> None:
    runtime = runtime_on(tmp_path)
    before = runtime.loaded
    runtime.loaded.path.write_text("x: " + "{a: " * 900 + "1" + "}" * 900 + "\n", "utf-8")
    with structlog.testing.capture_logs() as logs:
        assert await runtime.reload() is False
    assert runtime.loaded is before
    [refused] = [entry for entry in logs if entry["event"] == "reload_refused"]
    assert refused["problems"] == [
        f"{before.path}:1: (yaml): nested deeper than 32 levels, the most a config may be"
    ]
    assert "exc_info" not in refused


async def test_any_exception_while_loading_is_a_refused_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_on(tmp_path)
    before = runtime.loaded

    def load_fails(path: Path) -> None:
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(runtime_module, "load_config", load_fails)
    with structlog.testing.capture_logs() as logs:
        assert await runtime.reload() is False
    assert runtime.loaded is before
    [refused] = [entry for entry in logs if entry["event"] == "reload_refused"]
    assert refused["problems"] == [
        f"{before.path}:0: (file): cannot be loaded: MemoryError: cannot allocate"
    ]
    assert "exc_info" not in refused


async def test_rules_that_cannot_be_built_are_a_refused_reload_that_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_on(tmp_path)
    before = runtime.loaded
    runtime.loaded.path.write_text(
        f"gateway: {{id: cell-1, state_dir: {tmp_path / 'state'}, log_level: debug}}\n", "utf-8"
    )

    def build_fails(*args: object) -> None:
        raise ValueError("a rule kind's bug")

    monkeypatch.setattr(runtime_module, "build_rules", build_fails)
    with structlog.testing.capture_logs() as logs:
        assert await runtime.reload() is False
    assert runtime.loaded is before
    [refused] = [entry for entry in logs if entry["event"] == "reload_refused"]
    assert refused["problems"] == [
        f"{before.path}:0: (rules): cannot be built: ValueError: a rule kind's bug"
    ]


async def test_a_reload_that_fails_part_way_is_reported_and_does_not_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_on(tmp_path)
    runtime.loaded.path.write_text(
        f"gateway: {{id: cell-1, state_dir: {tmp_path / 'state'}, log_level: debug}}\n", "utf-8"
    )

    def set_level_fails(level: str) -> None:
        raise OSError("log handler gone")

    monkeypatch.setattr(runtime_module, "set_log_level", set_level_fails)
    with structlog.testing.capture_logs() as logs:
        assert await runtime.reload() is False
    [failed] = [entry for entry in logs if entry["event"] == "reload_failed"]
    assert failed["error"] == "OSError: log handler gone"
    assert "exc_info" not in failed
