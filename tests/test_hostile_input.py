"""Hostile input, generated: config text at the loader, command payloads at the command handler
(over a real actuator writing a real Modbus server), and register contents and raw bytes at the
Modbus driver's decode path.

What must hold whatever comes in: no exception escapes (a config is a Config or a ConfigError; a
command gets exactly one answer; a poll gives one sample per tag, good or bad with a reason), and
nothing reaches a device that the checks did not pass (every write the server received is on a
writable tag, within its min/max and of its type). Every test runs derandomized: the same
examples on every run, so a failure is reproducible. The minimal examples it found before the
fixes of issue 13 (deep nesting, NaN limits, a fraction to an int16 tag, a refused write that
dropped another override, an unbounded error answer, a YAML tag on a scalar) are explicit
@examples, so each is tried whatever is generated.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from closedloop import ModbusPlant, SteppedClock, coil_tag, float_tag, register_tag
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.properties import Properties
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controller.actuation import Actuator
from controller.config import Config, ConfigError, load_config, parse_config
from controller.model import DeviceStatus, Quality, Sample
from controller.mqtt import topics
from controller.mqtt.commands import CommandHandler
from controller.rules.config import ScheduleRuleConfig
from controller.rules.engine import RuleEngine
from controller.rules.kinds import ScheduleRule
from controller.runtime import Runtime
from controller.systemd import Notifier
from controller.tagtable import TagTable
from drivers.base import DriverContext
from drivers.modbus import build_modbus_drivers
from drivers.modbus.config import ModbusDevice
from drivers.modbus.driver import ModbusDriver

ROOT = Path(__file__).resolve().parent.parent
DEMO = (ROOT / "configs/demo.yaml").read_text(encoding="utf-8")

# Derandomized: the same examples every run (CI and here), no example database.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=60)
# --- a) config text ----------------------------------------------------------------------------

ODD_SCALARS = [
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "1e999",
    "-1e999",
    "99999999999999999999999999999",
    "0",
    "-0",
    "0x7fffffff",
    "0o777",
    "1_000",
    "~",
    "null",
    "''",
    '""',
    "[]",
    "{}",
    "true",
    "no",
    "2001-12-14",
    "12:30:00",
    "1min",
    "-5s",
    "0s",
    "1e-320",
    "é",
    "☃",
    "'\\u0000'",
    "!!binary aGk=",
    "x" * 5000,
    "${EDGECELL_SURELY_UNSET}",
    "&anchor 1",
    "*anchor",
    "!!python/object:os.system",
    "? complex",
    "- item",
    "|\n  block",
    ">-\n  folded",
    "'",
    '"',
    "{",
    "[",
    "%YAML 1.1",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN and infinities included
    st.text(max_size=40),
    st.sampled_from(["", "modbus", "opcua", "tcp", "rtu", "1s", "10min", "float32", "holding"]),
)
KEYS = st.sampled_from(
    [
        "gateway",
        "id",
        "mqtt",
        "devices",
        "rules",
        "actuation",
        "name",
        "driver",
        "link",
        "tags",
        "address",
        "type",
        "min",
        "max",
        "scale",
        "offset",
        "writable",
        "fallback",
        "max_step",
        "max_rate",
        "poll_interval",
        "timeout",
        "host",
        "port",
        "transport",
        "kind",
        "table",
        "manual_writes",
        "outputs",
        "heartbeat",
        "state_dir",
        "log_level",
        "endpoint",
        "node",
    ]
) | st.text(max_size=12)
structures = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


@st.composite
def config_shaped(draw: st.DrawFn) -> Any:
    """Mostly the top level of a config, with generated parts where the real ones go."""
    data: dict[str, Any] = {"gateway": draw(st.one_of(structures, st.just({"id": "fuzz"})))}
    for key in ("mqtt", "devices", "rules", "actuation"):
        if draw(st.booleans()):
            data[key] = draw(structures)
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@st.composite
def mutated_demo(draw: st.DrawFn) -> str:
    """configs/demo.yaml with a few lines deleted, repeated, re-indented or given odd values."""
    lines = DEMO.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        action = draw(st.sampled_from(["delete", "repeat", "value", "value", "indent", "chars"]))
        if action == "delete":
            del lines[i]
        elif action == "repeat":
            lines.insert(i, line)
        elif action == "indent":
            lines[i] = " " * draw(st.integers(0, 9)) + line.lstrip()
        elif action == "chars":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.text(min_size=1, max_size=4)) + line[at:]
        else:
            lines[i] = _odd_value(line, draw(st.sampled_from(ODD_SCALARS)), draw)
        if not lines:
            break
    return "\n".join(lines) + "\n"


def _odd_value(line: str, odd: str, draw: st.DrawFn) -> str:
    """The line with one `key: value` value (block or flow style) replaced by `odd`."""
    cuts = [i for i, c in enumerate(line) if c == ":" and line[i + 1 : i + 2] == " "]
    if not cuts:
        return line + " " + odd
    cut = draw(st.sampled_from(cuts)) + 2
    end = min((line.find(c, cut) for c in ",}" if line.find(c, cut) >= 0), default=len(line))
    return line[:cut] + odd + line[end:]


def finite_ordered_limits(config: Config) -> None:
    """Every number that bounds a write is finite, and min <= max."""
    for device in config.devices:
        for tag in device.tags:
            where = f"{device.name}.{tag.name}"
            numbers = {
                key: getattr(tag, key)
                for key in ("min", "max", "max_step", "max_rate", "fallback", "scale", "offset")
            }
            for key, value in numbers.items():
                if isinstance(value, float | int) and not isinstance(value, bool):
                    assert math.isfinite(value), f"{where}.{key} = {value!r} was accepted"
            assert numbers.get("scale") != 0, f"{where}.scale = 0 was accepted"
            low, high = numbers["min"], numbers["max"]
            if low is not None and high is not None:
                assert low <= high, f"{where}: min {low} > max {high}"
            fallback = numbers["fallback"]
            if isinstance(fallback, float | int) and not isinstance(fallback, bool):
                assert low is None or fallback >= low, f"{where}: fallback below min"
                assert high is None or fallback <= high, f"{where}: fallback above max"


def load_or_refuse(text: str) -> Config | None:
    """parse_config's only outcomes: a Config, or a ConfigError naming file and line."""
    try:
        return parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        problems = exc.problems
    assert problems, "a ConfigError without a problem"
    assert all(p.startswith("fuzz.yaml:") for p in problems), problems
    return None


@FUZZ
@given(data=st.one_of(structures, config_shaped()))
def test_generated_config_structures_load_or_are_refused(data: Any) -> None:
    config = load_or_refuse(dump(data))
    if config is not None:
        finite_ordered_limits(config)


@FUZZ
@given(text=mutated_demo())
def test_mutated_demo_config_loads_or_is_refused(text: str) -> None:
    load_or_refuse(text)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from([*ODD_SCALARS, "a: ", "- ", "\n", "  ", "&a ", "*a", "<<: *a"])
        ).map("".join),
    )
)
@example(text="!0")  # the minimal example it found
def test_arbitrary_text_loads_or_is_refused(text: str) -> None:
    load_or_refuse(text)


@pytest.mark.parametrize(
    "text",
    ["!0", "gateway: {id: !x fuzz}\n", "gateway: {id: fuzz}\nmqtt: !!python/object:os.system x\n"],
)
def test_an_unknown_yaml_tag_is_refused(text: str) -> None:
    load_or_refuse(text)


@FEW
@given(levels=st.integers(1, 4), width=st.integers(1, 9))
def test_aliases_load_or_are_refused(levels: int, width: int) -> None:
    # At most 9**4 = 6561 nodes after expansion: small enough to build on any code.
    lines = ["a0: &a0 [1, .nan, x]"]
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]")
    lines.append(f"gateway: {{id: fuzz}}\ndevices: *a{levels}")
    load_or_refuse("\n".join(lines) + "\n")


@settings(FEW, phases=[Phase.explicit, Phase.generate])  # no shrinking: slow on a recursion
@given(depth=st.integers(1, 1500), flow=st.booleans())
@example(depth=1000, flow=True)
def test_deeply_nested_config_is_refused_not_crashed(depth: int, flow: bool) -> None:
    if flow:
        text = "x: " + "{a: " * depth + "1" + "}" * depth + "\n"
    else:
        text = "x:\n" + "".join(" " * i + "- a:\n" for i in range(1, depth + 1)) + "1\n"
    load_or_refuse(text)


LIMITED_TAGS = [
    {"name": "setpoint", "address": 0, "type": "float32", "writable": "true", "min": 6, "max": 8},
    {"name": "speed", "address": 2, "type": "int16", "writable": "true", "min": -100, "max": 100},
    {"name": "level", "address": 3, "type": "uint16", "writable": "true", "scale": 0.1},
]


@FUZZ
@given(
    tag=st.sampled_from(LIMITED_TAGS),
    key=st.sampled_from(["min", "max", "scale", "offset", "fallback", "max_step", "max_rate"]),
    odd=st.sampled_from([".nan", ".inf", "-.inf", "1e999", "-1e999", "0", "1e308", "-1e308"]),
)
@example(tag=LIMITED_TAGS[0], key="min", odd=".nan")
def test_every_config_that_loads_has_finite_ordered_limits(
    tag: dict[str, Any], key: str, odd: str
) -> None:
    fields = ", ".join(f"{k}: {v}" for k, v in {**tag, key: odd}.items())
    text = (
        "gateway: {id: fuzz}\ndevices:\n  - name: dev\n    driver: modbus\n"
        "    link: {transport: tcp, host: 127.0.0.1, port: 5020}\n"
        f"    tags:\n      - {{{fields}}}\n"
    )
    config = load_or_refuse(text)
    if config is not None:
        finite_ordered_limits(config)


@FEW
@given(raw=st.binary(max_size=300))
def test_any_file_content_loads_or_is_refused(raw: bytes, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(raw)
    problems: list[str] = []
    try:
        load_config(path)
    except ConfigError as exc:
        problems = exc.problems
    assert all(p.startswith(str(path)) for p in problems), problems


@pytest.fixture
def running_config(tmp_path: Path) -> Runtime:
    path = tmp_path / "config.yaml"
    path.write_text(f"gateway: {{id: fuzz, state_dir: {tmp_path}}}\n", encoding="utf-8")
    return Runtime(load_config(path), notifier=Notifier(None))  # a notifier that sends nothing


async def reload_with(runtime: Runtime, text: str) -> None:
    """A reload of a broken file is refused (False) and the running config stays."""
    before = runtime.config
    runtime.loaded.path.write_text(text, encoding="utf-8")
    assert await runtime.reload() is False
    assert runtime.config is before


@FEW
@given(text=st.one_of(structures.map(dump), mutated_demo().map(lambda t: t + "\n: [")))
async def test_a_reload_of_a_broken_config_is_refused(running_config: Runtime, text: str) -> None:
    await reload_with(running_config, text)


@settings(FEW, phases=[Phase.explicit, Phase.generate])
@given(depth=st.integers(500, 1500))
@example(depth=1000)
async def test_a_reload_of_a_deeply_nested_config_is_refused(
    running_config: Runtime, depth: int
) -> None:
    await reload_with(running_config, "x: " + "{a: " * depth + "1" + "}" * depth + "\n")


async def test_a_reload_of_a_config_with_an_unknown_yaml_tag_is_refused(
    running_config: Runtime,
) -> None:
    await reload_with(running_config, "gateway: {id: fuzz}\nmqtt: {host: !0 x}\n")


# --- b) command payloads -----------------------------------------------------------------------

SETPOINT = float_tag("setpoint", 0, writable=True, min=6.0, max=8.0, fallback=7.0)
SPEED = {"name": "speed", "address": 2, "type": "int16", "writable": True, "min": -100, "max": 100}
COUNT = register_tag("count", 3, writable=True)  # uint16, no min/max: the type's range
RUN = coil_tag("run", 0, writable=True)
HEADER = float_tag("header", 4)  # read-only
INITIAL = {"setpoint": 7.0, "speed": 0, "count": 0, "run": False, "header": 6.8}
TAGS = ["comp.setpoint", "comp.speed", "comp.count", "comp.run", "comp.header"]
BASE = "edgecell/fuzz"


@dataclass
class DeviceWrites:
    """Every write request the Modbus server received: (function code, address, values)."""

    seen: list[tuple[int, int, list[Any]]] = field(default_factory=list)

    def __call__(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and pdu.function_code in (5, 6, 15, 16):
            values = list(pdu.bits) if pdu.function_code in (5, 15) else list(pdu.registers)
            self.seen.append((pdu.function_code, pdu.address, values))
        return pdu

    def decoded(self) -> list[tuple[str, Any]]:
        """(tag, value) of each write; an address no tag has is reported as such."""
        out: list[tuple[str, Any]] = []
        for fc, address, values in self.seen:
            if fc == 5 and address == 0:
                out.append(("comp.run", bool(values[0])))
            elif fc == 16 and address == 0 and len(values) == 2:
                out.append(("comp.setpoint", struct.unpack(">f", struct.pack(">HH", *values))[0]))
            elif fc == 6 and address == 2:
                out.append(("comp.speed", struct.unpack(">h", struct.pack(">H", values[0]))[0]))
            elif fc == 6 and address == 3:
                out.append(("comp.count", values[0]))
            else:
                out.append((f"fc{fc}@{address}", values))
        return out


async def start_server(trace: Any) -> tuple[Any, int]:
    """A pymodbus server on a free loopback port, 64 of each table, tracing requests."""
    unit = SimDevice(
        1,
        simdata=(
            [SimData(0, count=64, values=False, datatype=SimType.BITS)],
            [SimData(0, count=64, values=False, datatype=SimType.BITS)],
            [SimData(0, count=64, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=64, values=0, datatype=SimType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer([unit], address=("127.0.0.1", 0), trace_pdu=trace)
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]


def modbus_driver(
    device: ModbusDevice,
    clock: Any,
    table: TagTable | None,
    tmp_path: Path,
    samples: list[list[Sample]] | None = None,
) -> ModbusDriver:
    def on_samples(batch: Any) -> None:
        if table is not None:
            table.update(batch)
        if samples is not None:
            samples.append(list(batch))

    def on_status(status: DeviceStatus) -> None:
        return None

    [driver] = build_modbus_drivers([device], DriverContext(clock, on_samples, on_status, tmp_path))
    assert isinstance(driver, ModbusDriver)
    return driver


@dataclass
class Answers:
    """The command handler's Responder: every answer, decoded."""

    got: list[dict[str, Any]] = field(default_factory=list)

    def respond(
        self,
        request_properties: Properties | None,
        payload: bytes,
        fallback_topic: str | None = None,
    ) -> None:
        self.got.append(orjson.loads(payload))


@dataclass
class Bench:
    plant: ModbusPlant
    clock: SteppedClock
    writes: DeviceWrites

    async def reset(self) -> tuple[Actuator, CommandHandler, Answers]:
        """The device back to its initial values, read once; a new actuator and handler."""
        for tag, value in INITIAL.items():
            await self.plant.set(tag, value)
        await self.plant.poll()
        self.writes.seen.clear()
        self.clock.advance(60.0)
        actuator = self.plant.actuator(self.clock, base_topic=BASE, manual_writes=True)
        engine = RuleEngine(
            [
                ScheduleRule(
                    ScheduleRuleConfig.model_validate(
                        {
                            "kind": "schedule",
                            "name": "base",
                            "schedule": {"timezone": "UTC", "default": "always"},
                            "set": {"always": {"comp.setpoint": 7.5}},
                        }
                    )
                )
            ],
            self.plant.table,
            actuator,
            self.clock,
            base_topic=BASE,
        )
        answers = Answers()

        async def on_reload() -> bool:
            return False

        async def on_rebirth() -> None:
            return None

        handler = CommandHandler(
            engine=engine,
            actuator=actuator,
            responder=answers,
            base_topic=BASE,
            on_reload=on_reload,
            on_rebirth=on_rebirth,
        )
        return actuator, handler, answers


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    clock = SteppedClock()
    writes = DeviceWrites()
    server, port = await start_server(writes)
    device = ModbusDevice.model_validate(
        {
            "driver": "modbus",
            "name": "comp",
            "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
            "poll_interval": "1s",
            "timeout": "500ms",
            "tags": [SETPOINT, SPEED, COUNT, RUN, HEADER],
        }
    )
    table = TagTable()
    driver = modbus_driver(device, clock, table, tmp_path)
    plant = ModbusPlant(server, port, device, driver, table)
    yield Bench(plant, clock, writes)
    await plant.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
values = st.one_of(
    st.sampled_from(
        [
            1.5,
            -0.5,
            6.0,
            8.0,
            8.0000001,
            5.999999,
            100,
            -100,
            101,
            65535,
            65536,
            -1,
            40000,
            1e300,
            0,
            1,
            True,
            False,
            "7.5",
            None,
            [7],
            {"v": 7},
        ]
    ),
    st.floats(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    json_values,
)
write_payloads = st.fixed_dictionaries(
    {"tag": st.sampled_from(TAGS) | st.text(max_size=20), "value": values},
    optional={
        "ttl": st.sampled_from(["1min", "10min", "2h", "0s", "-1s", "1e9h", "", "x", 60]),
        "by": st.text(max_size=80),
        "extra": json_values,
    },
)


def encode(data: Any) -> bytes:
    """JSON as a client would send it; NaN and infinities as Python writes them (not JSON)."""
    return json.dumps(data, allow_nan=True).encode()


# Well-formed writes to the device's tags, most of them near or past a limit: the cases where a
# check that let something through would show on the device.
plausible_writes = st.fixed_dictionaries(
    {
        "tag": st.sampled_from(TAGS),
        "value": st.one_of(st.floats(-200, 200), st.integers(-70_000, 70_000), values),
        "ttl": st.sampled_from(["10min", "1h"]),
    },
    optional={"by": st.text(min_size=1, max_size=10)},
).map(encode)
commands = st.one_of(
    st.tuples(st.just("write"), plausible_writes),
    st.tuples(st.just("write"), plausible_writes),
    st.tuples(st.just("write"), write_payloads.map(encode)),
    st.tuples(
        st.just("override/clear"),
        st.fixed_dictionaries({"tag": st.sampled_from(TAGS) | st.text(max_size=10)}).map(encode),
    ),
    st.tuples(
        st.sampled_from(["rules/base/mode", "rules/nope/mode", "rules//mode"]),
        st.fixed_dictionaries(
            {"mode": st.sampled_from(["auto", "shadow", "off", "manual", ""]) | json_values}
        ).map(encode),
    ),
    st.tuples(
        st.sampled_from(
            [
                "write",
                "override/clear",
                "reload",
                "rebirth",
                "alarms/ack",
                "rules/base/mode",
                "",
                "unknown",
                "write/",
                "../write",
                "rules/base/mode/x",
            ]
        )
        | st.text(max_size=20),
        st.one_of(st.binary(max_size=200), json_values.map(encode)),
    ),
)


def within_limits(tag: str, value: Any) -> str | None:
    """Why a value that reached the device breaks its tag's limits (None: it does not)."""
    if tag not in ("comp.setpoint", "comp.speed", "comp.count", "comp.run"):
        return f"a write reached {tag}, which is not a writable tag"
    if tag == "comp.run":
        return None  # a coil holds true or false: nothing else can reach it
    low, high = {"comp.setpoint": (6.0, 8.0), "comp.speed": (-100, 100)}.get(tag, (0, 65535))
    if not low - 1e-5 <= value <= high + 1e-5:
        return f"{tag} got {value}, outside {low}..{high}"
    return None


async def send(handler: CommandHandler, command: str, payload: bytes) -> None:
    await handler(f"{BASE}/cmd/{command}", payload, None)


@FUZZ
@given(sequence=st.lists(commands, min_size=1, max_size=3))
async def test_every_command_is_answered_once_and_nothing_unchecked_is_written(
    bench: Bench, sequence: list[tuple[str, bytes]]
) -> None:
    _, handler, answers = await bench.reset()
    response_topic = topics.command_response(BASE)
    expected = 0
    for command, payload in sequence:
        await send(handler, command, payload)  # nothing may escape
        expected += f"{BASE}/cmd/{command}" != response_topic
        assert len(answers.got) == expected, (command, payload, answers.got)
        answer = answers.got[-1]
        assert isinstance(answer["ok"], bool)
        assert answer["ok"] or answer["error"], answer
    for tag, value in bench.writes.decoded():
        problem = within_limits(tag, value)
        assert problem is None, (problem, sequence, answers.got)


@FUZZ
@given(payload=write_payloads.map(lambda d: {**d, "ttl": "10min"}))
@example(payload={"tag": "comp.speed", "value": 1.5, "ttl": "10min"})
async def test_a_written_answer_says_what_the_device_got(
    bench: Bench, payload: dict[str, Any]
) -> None:
    _, handler, answers = await bench.reset()
    await send(handler, "write", encode(payload))
    [answer] = answers.got
    written = bench.writes.decoded()
    if answer.get("outcome") == "written":
        [(tag, value)] = written
        assert tag == answer["tag"]
        if isinstance(value, float):
            assert value == pytest.approx(answer["value"], rel=1e-6), (answer, written)
        else:
            assert value == answer["value"], (answer, written)  # 2 == 2.0, not 1.5
    else:
        # refused, failed, deferred or unchanged: the device got nothing
        assert written == [], (answer, written)


@st.composite
def held_and_other(draw: st.DrawFn) -> tuple[tuple[str, Any], dict[str, Any]]:
    """An operator's hold on a tag, and another write, mostly to the same tag."""
    held = draw(st.sampled_from([("comp.setpoint", 7.5), ("comp.speed", 7), ("comp.count", 300)]))
    other = draw(write_payloads)
    other["tag"] = draw(st.sampled_from([held[0], held[0], held[0], other["tag"]]))
    return held, {**other, "ttl": "10min"}


@FUZZ
@given(case=held_and_other())
@example(case=(("comp.count", 300), {"tag": "comp.count", "value": 65536, "ttl": "10min"}))
async def test_a_refused_write_changes_no_override(
    bench: Bench, case: tuple[tuple[str, Any], dict[str, Any]]
) -> None:
    held, payload = case
    actuator, handler, answers = await bench.reset()
    tag, value = held
    await send(handler, "write", encode({"tag": tag, "value": value, "ttl": "30min", "by": "a"}))
    assert answers.got[0]["ok"], answers.got
    before = actuator.overrides()
    await send(handler, "write", encode(payload))
    if not answers.got[1]["ok"]:
        assert actuator.overrides() == before, (payload, answers.got[1])


@FEW
@given(keys=st.integers(1, 60_000), long_value=st.integers(0, 2_000_000))
@example(keys=60_000, long_value=0)
async def test_the_answer_to_a_huge_command_is_bounded(
    bench: Bench, keys: int, long_value: int
) -> None:
    _, handler, answers = await bench.reset()
    payload = {"tag": "comp.setpoint", "value": 7, "ttl": "1min", "by": "b" * long_value}
    payload.update({f"unknown{i}": i for i in range(keys)})
    await send(handler, "write", encode(payload))
    [answer] = answers.got
    assert len(orjson.dumps(answer)) <= 64 * 1024, f"{len(orjson.dumps(answer))} bytes"


# --- c) device responses -----------------------------------------------------------------------

DECODED = [
    {"name": "i16", "address": 0, "type": "int16"},
    {"name": "u16", "address": 1, "type": "uint16", "scale": 0.1, "offset": -5},
    {"name": "i32", "address": 2, "type": "int32", "order": "CDAB"},
    {"name": "u32", "address": 4, "type": "uint32"},
    {"name": "f32", "address": 6, "type": "float32", "order": "BADC"},
    {"name": "f64", "address": 8, "type": "float64"},
    {"name": "i64", "address": 12, "type": "int64"},
    {"name": "text", "address": 16, "type": "string", "length": 4},
    {"name": "flag", "address": 20, "type": "bit", "bit": 13},
    {"name": "coil", "table": "coil", "address": 3, "type": "bool"},
    {"name": "din", "table": "discrete", "address": 5, "type": "bool"},
    {"name": "inreg", "table": "input", "address": 30, "type": "float32"},
]
KIND = {
    "int16": int,
    "uint16": float,
    "int32": int,
    "uint32": int,
    "float32": float,
    "float64": float,
    "int64": int,
    "string": str,
    "bit": bool,
    "bool": bool,
}


def check_samples(batches: list[list[Sample]]) -> list[Sample]:
    """One batch, one sample per tag: good with a value of the tag's type, or bad with a reason."""
    [batch] = batches
    assert sorted(s.tag for s in batch) == sorted(t["name"] for t in DECODED)
    by_tag = {t["name"]: t for t in DECODED}
    for sample in batch:
        if sample.quality is Quality.GOOD:
            kind = KIND[by_tag[sample.tag]["type"]]
            assert isinstance(sample.value, kind), sample
            assert kind is bool or not isinstance(sample.value, bool), sample
        else:
            assert sample.value is None, sample
            assert sample.reason, sample
    return batch


@FUZZ
@given(
    registers=st.lists(st.integers(0, 0xFFFF), min_size=32, max_size=32),
    bits=st.lists(st.booleans(), min_size=8, max_size=8),
)
async def test_any_register_contents_decode_to_good_or_bad_samples(
    tmp_path: Path, registers: list[int], bits: list[bool], served: Any
) -> None:
    server, port = served
    await server.async_setValues(1, 16, 0, registers)
    await server.async_setValues(1, 4, 30, registers[6:8])  # input registers
    await server.async_setValues(1, 15, 0, bits)
    await server.async_setValues(1, 2, 0, bits)
    batches: list[list[Sample]] = []
    driver = modbus_driver(decoder_device(port), SteppedClock(), None, tmp_path, batches)
    try:
        await driver.poll_once()
    finally:
        await driver.close()
    batch = check_samples(batches)
    # Registers always have a reading: only text that is not UTF-8 may be bad.
    bad = {s.tag for s in batch if s.quality is not Quality.GOOD}
    assert bad <= {"text"}, batch


def decoder_device(port: int) -> ModbusDevice:
    return ModbusDevice.model_validate(
        {
            "driver": "modbus",
            "name": "meter",
            "link": {"transport": "tcp", "host": "127.0.0.1", "port": port},
            "poll_interval": "1s",
            "timeout": "200ms",
            "retries": 0,
            "tags": DECODED,
        }
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Any, int]]:
    server, port = await start_server(lambda sending, pdu: pdu)
    yield server, port
    await server.shutdown()


@dataclass
class GarbagePeer:
    """A TCP peer that answers every request with the bytes it is told to."""

    reply: bytes = b""
    echo_header: bool = True
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.read(300):
                head = request[:2] + request[2:4] if self.echo_header else b""
                writer.write(head + self.reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def garbage_peer() -> AsyncIterator[GarbagePeer]:
    peer = GarbagePeer()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    server.close()


@st.composite
def raw_replies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """After the transaction and protocol ids: a plausible MBAP rest with a random PDU, or
    anything at all (then the ids are random too)."""
    if draw(st.booleans()):
        pdu = draw(
            st.one_of(
                st.binary(max_size=260),
                st.tuples(
                    st.sampled_from([1, 2, 3, 4, 0x81, 0x83, 0x84, 0x90, 0]),
                    st.integers(0, 255),
                    st.binary(max_size=255),
                ).map(lambda t: bytes([t[0], t[1]]) + t[2]),
            )
        )
        length = draw(st.one_of(st.just(len(pdu) + 1), st.integers(0, 0xFFFF)))
        return struct.pack(">HB", length, 1) + pdu, True
    return draw(st.binary(max_size=300)), False


@FEW
@given(reply=raw_replies())
async def test_any_bytes_from_a_peer_give_bad_samples_with_reasons(
    tmp_path: Path, garbage_peer: GarbagePeer, reply: tuple[bytes, bool]
) -> None:
    garbage_peer.reply, garbage_peer.echo_header = reply
    batches: list[list[Sample]] = []
    driver = modbus_driver(
        decoder_device(garbage_peer.port), SteppedClock(), None, tmp_path, batches
    )
    try:
        await driver.poll_once()
    finally:
        await driver.close()  # the last user of its link: the connection is closed
    check_samples(batches)
