"""systemd/edgecell.service as systemd itself reads it: `systemd-analyze verify` finds nothing to
complain about, `systemd-analyze security` rates it OK, and the commands it runs exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edgecell.service"
SERIAL_DROP_IN = REPO / "systemd" / "serial-port.conf"
INSTALLED_PREFIX = "/opt/edgecell/current"
MAX_EXPOSURE = 2.0


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: run scripts/setup"
    return subprocess.run([analyze, *args], capture_output=True, text=True, timeout=60, check=False)


def _unit_with_existing_commands(root: Path) -> Path:
    """A copy of the unit whose /opt/edgecell/current paths point into `root`, where
    bin/edgecell is this checkout's console script: verify checks that commands exist."""
    bin_dir = root / "opt/edgecell/current/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "edgecell").symlink_to(Path(sys.executable).parent / "edgecell")
    relocated = root / INSTALLED_PREFIX.lstrip("/")
    unit = root / "edgecell.service"
    text = UNIT.read_text(encoding="utf-8").replace(INSTALLED_PREFIX, str(relocated))
    unit.write_text(text, encoding="utf-8")
    print(f"verify: unit copied to {unit}, {INSTALLED_PREFIX} -> {relocated}")
    print(f"verify: {bin_dir / 'edgecell'} -> {Path(sys.executable).parent / 'edgecell'}")
    return unit


def _exposure(unit: Path) -> float:
    result = _analyze("security", "--offline=true", str(unit))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match is not None, result.stdout
    print(f"systemd-analyze security {unit.name}: exposure {match.group(1)} {match.group(2)}")
    return float(match.group(1))


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = _unit_with_existing_commands(tmp_path)
    result = _analyze("verify", str(unit))
    # verify exits 0 on unknown keys too: any line it prints is a problem.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_with_the_serial_drop_in_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = _unit_with_existing_commands(tmp_path)
    drop_ins = tmp_path / "edgecell.service.d"
    drop_ins.mkdir()
    shutil.copy(SERIAL_DROP_IN, drop_ins / "serial-port.conf")
    result = _analyze("verify", str(unit))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_exposure_is_ok() -> None:
    assert _exposure(UNIT) <= MAX_EXPOSURE


def test_unit_with_the_serial_drop_in_stays_ok(tmp_path: Path) -> None:
    shutil.copy(UNIT, tmp_path / "edgecell.service")
    (tmp_path / "edgecell.service.d").mkdir()
    shutil.copy(SERIAL_DROP_IN, tmp_path / "edgecell.service.d" / "serial-port.conf")
    assert _exposure(tmp_path / "edgecell.service") <= MAX_EXPOSURE


@pytest.mark.parametrize("key", ["ExecStartPre", "ExecStart"])
def test_unit_commands_are_edgecell_subcommands(key: str) -> None:
    line = next(
        line for line in UNIT.read_text(encoding="utf-8").splitlines() if line.startswith(f"{key}=")
    )
    command, *args = line.split("=", 1)[1].split()
    assert command == f"{INSTALLED_PREFIX}/bin/edgecell"
    # The arguments parse with the real CLI (run CONFIG, validate CONFIG).
    parsed = build_parser().parse_args(args)
    assert parsed.command in {"run", "validate"}
