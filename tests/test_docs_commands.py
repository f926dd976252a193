"""Every `edgecell ...` command line of README.md and docs/*.md parses with the CLI as it is:
the subcommand exists, its flags are its own, their values have the flag's type. A renamed
flag or subcommand then fails here, not on an operator's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from controller.cli import build_parser, main
from controller.config import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LINE,
    MAX_NODES,
    MAX_PROBLEMS,
    MAX_SHOWN,
)

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The placeholders the docs write for a value (`--unit N`, `--scenario <name>`).
PLACEHOLDERS = {"N": "1", "<name>": "normal-day", "URL": "opc.tcp://plc:4840"}


def command_lines() -> list[tuple[str, str]]:
    """(doc, command line) for each `edgecell <command> ...` in a code block (fenced or
    indented) or inline code."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        lines = [
            line.strip().removeprefix("$ ")
            for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
            for line in block.splitlines()
        ]
        lines += re.findall(r"`(edgecell [a-z][^`]*)`", text)
        lines += re.findall(r"^ {4,}(edgecell [a-z].*)$", text, re.M)
        for line in lines:
            if re.match(r"edgecell [a-z]+(\s|$)", line) and not line.startswith("edgecell never"):
                command = re.split(r" #| > | \| ", line)[0].strip()
                found.append((doc.name, " ".join(command.split())))
    return sorted(set(found))


COMMANDS = command_lines()


def test_the_docs_show_every_command() -> None:
    shown = {line.split()[1] for _, line in COMMANDS}
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert set(sub.choices or {}) - shown == set()


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}:{c}" for d, c in COMMANDS])
def test_a_documented_command_line_parses(doc: str, line: str) -> None:
    # A usage line's optional parts (`[--depth 3]`) are given; `[security flags]` stands for
    # the flags of opcua.md's table.
    usage = re.sub(r"\[(--[^\]]+)\]", r"\1", line.replace(" [security flags]", ""))
    argv = [PLACEHOLDERS.get(word, word) for word in shlex.split(usage)[1:]]
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert argv[0] in (sub.choices or {})
    if len(argv) > 1:  # not a command named in prose (`edgecell validate`): its arguments too
        parser.parse_args(argv)


def test_the_validate_example_is_what_validate_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """configuration.md's first example, `edgecell validate configs/demo.yaml`, run."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    shown = re.search(r"\$ edgecell validate (configs/demo\.yaml)\n(.*)\n", text)
    assert shown is not None
    assert main(["validate", str(ROOT / shown[1])]) == 0
    assert capsys.readouterr().out.strip() == shown[2].replace(shown[1], str(ROOT / shown[1]))


def test_the_config_limits_table_gives_the_loader_s_bounds() -> None:
    """configuration.md, "Limits": each bound as the loader has it."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split("### Limits", 1)[1].split("\n\n", 3)[2]
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", table, re.M))
    assert rows["file size"].startswith(f"{MAX_CONFIG_BYTES // 1024**2} MiB")
    assert rows["nesting of mappings and lists"] == f"{MAX_DEPTH} levels"
    assert rows["values after alias expansion"].startswith(f"{MAX_NODES:,}")
    assert rows["items in one list or mapping"] == f"{MAX_ITEMS:,}"
    assert rows["problems reported"].startswith(f"{MAX_PROBLEMS} lines")
    assert rows["a value, key or line repeated in an error"].startswith(
        f"{MAX_SHOWN} characters of a value or key"
    )
    assert f"{MAX_LINE} characters of a line" in rows["a value, key or line repeated in an error"]
