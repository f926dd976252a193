"""pyproject.toml builds without setuptools' deprecation warnings: the license is an SPDX
string with its file (a TOML table stops building after 2027-02-18), on a setuptools that
knows the form (77 and later)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_build_requires_a_setuptools_that_reads_spdx_licenses() -> None:
    requires = pyproject()["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert match is not None, setuptools
    assert int(match.group(1)) >= 77


def test_pvlib_is_an_optional_extra_never_a_core_dependency() -> None:
    project = pyproject()["project"]
    assert not [d for d in project["dependencies"] if d.startswith(("pvlib", "pandas", "scipy"))]
    assert any(d.startswith("pvlib") for d in project["optional-dependencies"]["sim"])


def test_the_daemon_does_not_load_the_simulators_libraries() -> None:
    """The daemon's modules (CLI, runtime, every driver) leave pvlib, pandas and the SunSpec
    client unloaded: they are for the simulated cell and tests, not for a small box."""
    code = (
        "import sys\n"
        "import controller.cli, controller.runtime, drivers.registry\n"
        "import drivers.modbus.driver, drivers.modbus.sunspec\n"
        "heavy = sorted(m for m in ('pvlib', 'pandas', 'scipy', 'sunspec2') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == ""
