"""Hostile config files: what the loader refuses before it has used much time or memory, and
how much of a bad value an error repeats. The golden cases (tests/configs/) pin the lines; these
pin the bounds, with real files and `edgecell validate` in a process whose address space is
limited, so a loader that tried would fail with MemoryError instead of taking the machine."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from controller import config as config_module
from controller.cli import EXIT_BAD_INPUT, main
from controller.config import ConfigError, load_config, parse_config

# Far more than validate needs (about 60 MB with its imports), far less than a bomb takes.
ADDRESS_SPACE = 400 * 1024**2


def validate_limited(path: str) -> subprocess.CompletedProcess[str]:
    """`edgecell validate path` in a child limited to ADDRESS_SPACE bytes of memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-m", "controller", "validate", path],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        check=False,
    )


def alias_bomb(levels: int) -> str:
    lines = ["gateway: {id: cell-1}", "a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{name}: &{name} [" + ",".join(f"*{previous}" for _ in range(9)) + "]")
        previous = name
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9), encoding="utf-8")
    assert len(path.read_bytes()) < 400
    done = validate_limited(str(path))
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    assert f"{path}:" in done.stderr
    assert "aliases expand to more than" in done.stderr, done.stderr[-2000:]


def test_validate_of_an_endless_file_reads_a_bounded_amount() -> None:
    done = validate_limited("/dev/zero")
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    assert done.stderr == (
        f"/dev/zero:0: (file): larger than {config_module.MAX_CONFIG_BYTES} bytes "
        f"({config_module.MAX_CONFIG_BYTES // 1024**2} MiB), the most a config may be\n"
    )


def test_a_file_over_the_size_limit_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as file:
        file.write(b"gateway: {id: cell-1}\n")
        file.truncate(config_module.MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.problems == [
        f"{path}:0: (file): larger than {config_module.MAX_CONFIG_BYTES} bytes (32 MiB), "
        "the most a config may be"
    ]


def test_the_node_count_counts_what_aliases_expand_to(monkeypatch: pytest.MonkeyPatch) -> None:
    text = alias_bomb(3)  # 9 + 81 + 729 strings, under 1,000 nodes in all
    monkeypatch.setattr(config_module, "MAX_NODES", 500)
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "bomb.yaml")
    assert refused.value.problems == [
        "bomb.yaml:4: (yaml): aliases expand to more than 500 values, the most a config may have"
    ]


def test_nesting_deeper_than_the_limit_is_refused_with_its_line() -> None:
    depth = config_module.MAX_DEPTH
    inner = "{a: " * (depth - 1) + "1" + "}" * (depth - 1)
    ok = f"gateway: {{id: cell-1}}\nx: {inner}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(ok, "ok.yaml")
    assert refused.value.problems == ["ok.yaml:2: x: unknown key"]  # deep enough, but allowed
    deeper = f"gateway: {{id: cell-1}}\n\nx: {{a: {inner}}}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(deeper, "deep.yaml")
    assert refused.value.problems == [
        f"deep.yaml:3: (yaml): nested deeper than {depth} levels, the most a config may be"
    ]


def test_an_alias_cannot_nest_past_the_limit() -> None:
    depth = config_module.MAX_DEPTH
    half = depth // 2 + 1
    text = (
        f"gateway: {{id: cell-1}}\nx: &x {'[' * half}1{']' * half}\ny: {'[' * half}*x{']' * half}\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "c.yaml")
    assert refused.value.problems == [
        f"c.yaml:3: (yaml): nested deeper than {depth} levels, the most a config may be"
    ]


def test_a_huge_value_is_not_repeated_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    big = 10 * 1024**2
    # An explicit key ('? '): a plain one is at most 1,024 characters in YAML.
    text = f"gateway:\n  id: {'x' * big}\nmqtt:\n  ? {'k' * big}\n  : 1\n"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err) < 1000, err[:2000]
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:2: gateway.id: 'xxxxxxxx"), lines
    assert f"…' ({big} characters) is not a valid name" in lines[0], lines
    assert lines[1].startswith(f"{path}:4: mqtt.kkkkkkkk"), lines
    assert f"… ({big} characters): unknown key" in lines[1], lines


def test_many_problems_are_cut_to_a_bounded_list(tmp_path: Path) -> None:
    tags = "\n".join(f"      - {{name: t{i}, address: {i}, type: nonsense}}" for i in range(500))
    text = (
        "gateway: {id: cell-1}\ndevices:\n  - name: plc\n    driver: modbus\n"
        f"    link: {{transport: tcp, host: 127.0.0.1}}\n    tags:\n{tags}\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "c.yaml")
    problems = refused.value.problems
    assert len(problems) == config_module.MAX_PROBLEMS + 1
    assert problems[0].startswith("c.yaml:7: devices[0].tags[0].type: Input should be")
    assert problems[-1] == f"c.yaml: ... and {500 - config_module.MAX_PROBLEMS} more problems"


def test_no_config_model_lets_a_number_be_infinite_or_nan() -> None:
    # The rule is StrictModel's; a model that turned it off would need to say why, here.
    from controller.configtypes import StrictModel

    def subclasses(cls: type) -> list[type]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in subclasses(child))]

    models = subclasses(StrictModel)
    assert len(models) > 30  # the rule, energy, water, driver and mqtt models are all here
    assert [m.__name__ for m in models if m.model_config.get("allow_inf_nan") is not False] == []


def test_a_list_longer_than_the_limit_is_refused_with_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config_module, "MAX_ITEMS", 3)
    with pytest.raises(ConfigError) as refused:
        parse_config("gateway: {id: cell-1}\ndevices:\n  - 1\n  - 2\n  - 3\n  - 4\n", "c.yaml")
    assert refused.value.problems == [
        "c.yaml:6: (yaml): more than 3 items in one list or mapping, the most a config may have"
    ]


def test_a_file_of_errors_stops_being_validated_and_its_first_problems_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every tag wrong: validation would collect a million errors for a million tags (and a GB).
    monkeypatch.setattr(config_module, "ERROR_BUDGET", 1000)
    tags = "[" + ", ".join(["{}"] * 2000) + "]"
    text = f"gateway: {{id: cell-1}}\ndevices:\n  - {{name: d, driver: modbus, tags: {tags}}}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "c.yaml")
    problems = refused.value.problems
    assert problems[:3] == [
        "c.yaml:3: devices[0].link: Field required",
        "c.yaml:3: devices[0].tags[0].name: Field required",
        "c.yaml:3: devices[0].tags[0].address: Field required",
    ]
    assert len(problems) == config_module.MAX_PROBLEMS + 1
    assert problems[-1] == "c.yaml: ... and more problems, too many to count"


def test_a_password_through_an_alias_is_judged_by_what_the_anchor_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGECELL_TEST_PASSWORD", "s3cret")
    text = (
        "gateway: {id: cell-1}\n"
        "mqtt: {client_id: &ref '${EDGECELL_TEST_PASSWORD}', username: u, password: *ref}\n"
    )
    assert parse_config(text, "c.yaml").mqtt.resolve_password() == "s3cret"
    literal = text.replace("'${EDGECELL_TEST_PASSWORD}'", "hunter2")
    with pytest.raises(ConfigError) as refused:
        parse_config(literal, "c.yaml")
    assert refused.value.problems == [
        "c.yaml:2: mqtt.password: a literal password is refused: use password_file: or '${ENV_VAR}'"
    ]
