"""scripts/install.sh into a temporary root (--destdir): the tree it lays out, validation before
enabling, upgrade and rollback. Every install but one takes its dependencies from this
checkout's venv (--venv-from); one builds a real venv with pip, as on a gateway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install.sh"
VENV = Path(sys.executable).parent.parent
PREFIX = "opt/edgecell"

BAD_CONFIG = """\
gateway:
  id: cell 1
mqtt:
  port: 1883
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """edgecell built once as a wheel, from a copy of the checkout (no build/ left in it)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    for package in ("controller", "drivers"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    return next(out.glob("edgecell-*.whl"))


def install(
    root: Path, *args: str, source: Path | None = None, venv_from: bool = True
) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(INSTALL), "--destdir", str(root), *args]
    if source is not None:
        command += ["--source", str(source)]
    if venv_from:
        command += ["--venv-from", str(VENV)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    print(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result


def link(root: Path, name: str) -> str:
    return os.readlink(root / PREFIX / name)


def test_install_lays_out_release_current_unit_and_config(tmp_path: Path, wheel: Path) -> None:
    result = install(tmp_path, source=wheel)
    assert result.returncode == 0
    release = tmp_path / PREFIX / "releases" / "0.1.0"
    assert link(tmp_path, "current") == "releases/0.1.0"
    # The unit runs current/bin/edgecell, whose interpreter is where the release will live.
    unit = (tmp_path / "etc/systemd/system/edgecell.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/edgecell/current/bin/edgecell run /etc/edgecell/config.yaml" in unit
    shebang = (release / "bin" / "edgecell").read_text(encoding="utf-8").splitlines()[0]
    assert shebang == "#!/opt/edgecell/releases/0.1.0/bin/python"
    # The config comes from the example; the credential the unit loads exists, for root only.
    config = tmp_path / "etc/edgecell/config.yaml"
    example = REPO / "configs/examples/gateway.yaml"
    assert config.read_text(encoding="utf-8") == example.read_text(encoding="utf-8")
    credentials = tmp_path / "etc/edgecell/credentials"
    assert credentials.stat().st_mode & 0o777 == 0o700
    assert (credentials / "mqtt-password").stat().st_mode & 0o777 == 0o600


def test_installed_release_runs_edgecell_from_its_own_site_packages(
    tmp_path: Path, wheel: Path
) -> None:
    assert install(tmp_path, source=wheel).returncode == 0
    python = tmp_path / PREFIX / "current" / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import controller; print(controller.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert found.startswith(str(tmp_path / PREFIX / "current"))


def test_install_enables_the_unit_when_the_config_is_valid(tmp_path: Path, wheel: Path) -> None:
    assert install(tmp_path, source=wheel).returncode == 0
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants/edgecell.service"
    assert os.readlink(wants) == "/etc/systemd/system/edgecell.service"


def test_install_refuses_to_enable_a_bad_config(tmp_path: Path, wheel: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG, encoding="utf-8")
    root = tmp_path / "root"
    result = install(root, "--config", str(bad), source=wheel)
    assert result.returncode == 2
    assert f"{root}/etc/edgecell/config.yaml:2: gateway.id:" in result.stderr
    assert "refusing to enable edgecell.service" in result.stderr
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()


def test_install_keeps_an_existing_config(tmp_path: Path, wheel: Path) -> None:
    config = tmp_path / "etc/edgecell/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("gateway:\n  id: kept\n", encoding="utf-8")
    assert install(tmp_path, source=wheel).returncode == 0
    assert config.read_text(encoding="utf-8") == "gateway:\n  id: kept\n"


def test_upgrade_switches_current_and_keeps_the_previous_release(
    tmp_path: Path, wheel: Path
) -> None:
    assert install(tmp_path, source=wheel).returncode == 0
    result = install(tmp_path, "--upgrade", "--version", "0.2.0", source=wheel)
    assert result.returncode == 0
    assert (link(tmp_path, "current"), link(tmp_path, "previous")) == (
        "releases/0.2.0",
        "releases/0.1.0",
    )
    assert (tmp_path / PREFIX / "releases/0.1.0/bin/python").exists()


def test_rollback_returns_to_the_previous_release(tmp_path: Path, wheel: Path) -> None:
    assert install(tmp_path, source=wheel).returncode == 0
    assert install(tmp_path, "--upgrade", "--version", "0.2.0", source=wheel).returncode == 0
    result = install(tmp_path, "--rollback")
    assert result.returncode == 0
    # Rolling back twice returns to where the upgrade went.
    assert (link(tmp_path, "current"), link(tmp_path, "previous")) == (
        "releases/0.1.0",
        "releases/0.2.0",
    )


def test_upgrade_refused_by_the_config_keeps_the_running_release(
    tmp_path: Path, wheel: Path
) -> None:
    assert install(tmp_path, source=wheel).returncode == 0
    (tmp_path / "etc/edgecell/config.yaml").write_text(BAD_CONFIG, encoding="utf-8")
    result = install(tmp_path, "--upgrade", "--version", "0.2.0", source=wheel)
    assert result.returncode == 2
    assert "release 0.2.0 refuses" in result.stderr
    assert link(tmp_path, "current") == "releases/0.1.0"
    assert not (tmp_path / PREFIX / "previous").exists()


def test_install_without_venv_from_builds_a_complete_venv_with_pip(
    tmp_path: Path, wheel: Path
) -> None:
    # The gateway's way: a fresh venv, dependencies from the package index (or pip's cache).
    result = install(tmp_path, "--python", sys.executable, source=wheel, venv_from=False)
    assert result.returncode == 0
    python = tmp_path / PREFIX / "current" / "bin" / "python"
    check = "import pymodbus, asyncua, aiomqtt, pydantic, structlog, yaml, controller.runtime"
    # From outside the checkout, so that nothing is imported from it.
    subprocess.run([str(python), "-c", check], check=True, timeout=120, cwd=tmp_path)
    site = python.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert not (site / "site-packages" / "edgecell-dependencies.pth").exists()
