"""Generated config text at the loader: it either gives a Config whose every number is finite,
or refuses with `file:line: field: message` lines of bounded length. Nothing else escapes (no
RecursionError, OverflowError, TypeError from an odd key or value)."""

from __future__ import annotations

import math
import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller import config as config_module
from controller.config import Config, ConfigError, parse_config

VALID = """\
gateway: {id: cell-1}
mqtt: {host: 127.0.0.1, keepalive: 30s, buffer: {max_bytes: 1MiB, drain_rate: 500}}
devices:
  - name: plc
    driver: modbus
    link: {transport: tcp, host: 127.0.0.1, port: 502}
    poll_interval: 1s
    tags:
      - {name: sp, address: 0, type: int16, writable: true, min: 0, max: 100, scale: 0.1,
         fallback: 5, max_step: 2}
      - {name: pump, table: coil, address: 0, type: bool, writable: true, fallback: false}
rules:
  - name: hold
    kind: pid
    measurement: plc.sp
    setpoint: 50
    output: plc.sp
    pid: {kp: 1.0, ki: 0.1, out_min: 0, out_max: 100}
"""

# What replaces a value of VALID: YAML's odd numbers, huge and nested values, aliases, tags.
ODD = st.sampled_from(
    [
        ".nan",
        ".inf",
        "-.inf",
        ".NaN",
        "1e999",
        "-1e999",
        "0",
        "-0.0",
        "1" * 400,
        "9" * 400 + "s",
        "'" + "x" * 5000 + "'",
        "[" * 60 + "]" * 60,
        "{a: " * 40 + "1" + "}" * 40,
        "*nowhere",
        "&a [1, *a]",
        "!!python/object:os.system x",
        "!!binary '@@'",
        "2020-02-30",
        "!!set {a}",
        "? [a]",
        "~",
        "''",
        "'${EDGECELL_FUZZ_UNSET}'",
        "true",
        "0x7fffffffffffffffffff",
        "[&b x, *b, *b]",
        "{<<: {a: 1}}",
        "!!float nan",
        "!!int x",
        "'\\u0000'",
    ]
)
SCALAR = re.compile(r"(?<=: )[^\s{},\[\]]+")
LINE = re.compile(r"^fuzz\.yaml:\d+: \S.*: .+$", re.S)


def mutate(draw: Any) -> str:
    spots = list(SCALAR.finditer(VALID))
    chosen = draw(st.lists(st.sampled_from(spots), min_size=1, max_size=4, unique_by=id))
    text = VALID
    for match in sorted(chosen, key=lambda m: m.start(), reverse=True):
        text = text[: match.start()] + draw(ODD) + text[match.end() :]
    return text


@st.composite
def config_texts(draw: Any) -> str:
    if draw(st.booleans()):
        return mutate(draw)
    tokens = st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ": ",
            ", ",
            "- ",
            "\n",
            "  ",
            "&a ",
            "*a",
            "!!str ",
            "? ",
            "'",
            '"',
            "#",
            "gateway",
            "id",
            "x",
            "1",
            ".nan",
            "devices",
            "---\n",
            "|\n",
            "%YAML 1.1\n",
        ]
    )
    return "".join(draw(st.lists(tokens, max_size=60)))


def numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, list | tuple):
        return [n for item in value for n in numbers(item)]
    return [value] if isinstance(value, float) else []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_texts())
@example("'  ': ")  # a key of spaces: the path was shown blank ("fuzz.yaml:1:   : unknown key")
def test_generated_config_text_is_loaded_or_refused_with_lines(text: str) -> None:
    problems: list[str] = []
    try:
        config = parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        assert len(problems) <= config_module.MAX_PROBLEMS + 1
        for problem in problems[: config_module.MAX_PROBLEMS]:
            assert LINE.match(problem), problem
            assert len(problem) <= config_module.MAX_LINE + 40, problem[:200]
        return
    assert isinstance(config, Config)
    assert all(math.isfinite(n) for n in numbers(config.model_dump())), config
