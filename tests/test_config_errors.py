"""Golden files: every kind of bad config gives exit 2 and exactly the pinned `file:line` lines.

One folder per case under tests/configs/: config.yaml and expected.err (what `edgecell
validate` prints). To add a case, write config.yaml, run validate, read the output critically,
and save it as expected.err.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.cli import EXIT_BAD_INPUT, EXIT_OK, main

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted(p.name for p in (ROOT / "tests" / "configs").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_bad_config_is_refused_with_its_line(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("EDGECELL_TEST_SURELY_UNSET_VARIABLE", raising=False)
    folder = Path("tests") / "configs" / case
    code = main(["validate", str(folder / "config.yaml")])
    expected = (ROOT / folder / "expected.err").read_text(encoding="utf-8")
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == expected
    assert expected.startswith(f"{folder}/config.yaml:")


def test_missing_config_file_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/edgecell.yaml"]) == EXIT_BAD_INPUT
    assert "/nonexistent/edgecell.yaml:0: (file): cannot read" in capsys.readouterr().err


def test_environment_variable_fills_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.config import load_config

    monkeypatch.setenv("EDGECELL_TEST_PASSWORD", "s3cret")
    path = tmp_path / "c.yaml"
    path.write_text(
        "gateway: {id: cell-1}\nmqtt: {username: u, password: '${EDGECELL_TEST_PASSWORD}'}\n",
        encoding="utf-8",
    )
    assert load_config(path).config.mqtt.resolve_password() == "s3cret"


def test_password_file_is_read(tmp_path: Path) -> None:
    from controller.config import load_config

    secret = tmp_path / "mqtt-password"
    secret.write_text("from-a-file\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"gateway: {{id: cell-1}}\nmqtt: {{username: u, password_file: {secret}}}\n",
        encoding="utf-8",
    )
    assert load_config(path).config.mqtt.resolve_password() == "from-a-file"


SHIPPED = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "configs").rglob("*.yaml")
    if "sim" not in p.relative_to(ROOT / "configs").parts
)


@pytest.mark.parametrize("config", SHIPPED)
def test_shipped_config_validates(
    config: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Shipped gateway configs read passwords from systemd's credentials directory.
    text = (ROOT / config).read_text(encoding="utf-8")
    for name in re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)", text):
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.chdir(ROOT)
    assert main(["validate", config]) == EXIT_OK, capsys.readouterr().err
