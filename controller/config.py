"""pydantic v2 models of the YAML config, and a loader whose errors name file, line and field.

`load_config(path)` raises `ConfigError`, whose `problems` are `file:line: field.path: message`
lines: every problem in the file at once (up to MAX_PROBLEMS), not the first only.

The loader is bounded: a file is refused, with its line, past MAX_CONFIG_BYTES, MAX_DEPTH,
MAX_ITEMS or MAX_NODES (aliases counted at what they expand to), before it could take the
gateway's memory or recurse; errors repeat at most MAX_SHOWN characters of a value. It reads
libyaml's events straight into plain data (no node tree), and finds line numbers only when
there are errors to place (docs/configuration.md, "Limits"; bench/README.md, "Config load").
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from controller.configtypes import ErrorBudget, Name, StrictModel, TooManyProblemsError
from controller.mqtt.config import MqttConfig
from controller.rules.config import ActuationConfig, RuleConfig, check_closed_loop, tag_index
from controller.rules.energy.battery import BatteryControlConfig
from controller.rules.energy.battery_peak_shaving import BatteryPeakShavingConfig
from controller.rules.energy.battery_schedule import BatteryScheduleConfig
from controller.rules.energy.load_schedule import LoadScheduleConfig
from controller.rules.energy.peak_shaving_config import PeakShavingConfig
from controller.scheduler.config import SchedulerConfig, TariffConfig
from controller.sparkplug.config import SparkplugConfig, metric_name_clash
from drivers.modbus.config import ModbusDevice
from drivers.opcua.config import OpcUaDevice

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


class GatewayConfig(StrictModel):
    id: Name
    state_dir: Path = Path("/var/lib/edgecell")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


# Each driver kind adds its device model here.
DeviceConfig = Annotated[ModbusDevice | OpcUaDevice, Field(discriminator="driver")]


class Config(StrictModel):
    gateway: GatewayConfig
    mqtt: MqttConfig = MqttConfig()
    devices: list[DeviceConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    actuation: ActuationConfig = ActuationConfig()
    sparkplug: SparkplugConfig = SparkplugConfig()
    # The site's tariff (the scheduler's prices) and the scheduler (docs/configuration.md).
    tariff: TariffConfig | None = None
    scheduler: SchedulerConfig | None = None

    @model_validator(mode="after")
    def _unique_device_names(self) -> Config:
        seen: set[str] = set()
        links: dict[str, tuple[str, object]] = {}
        for i, device in enumerate(self.devices):
            if device.name in seen:
                raise ValueError(f"devices[{i}].name: duplicate device name {device.name!r}")
            seen.add(device.name)
            link = getattr(device, "link", None)
            if link is None:
                continue
            first = links.setdefault(link.key, (device.name, link))
            if first[1] != link:
                # One connection serves them all, so it cannot have two sets of settings.
                raise ValueError(
                    f"devices[{i}].link: {device.name!r} shares {link.key} with {first[0]!r} "
                    "but with other link settings; devices on one link must agree"
                )
        return self

    @model_validator(mode="after")
    def _rules_match_tags(self) -> Config:
        # Rules and the actuator name tags that exist and write only tags declared writable.
        problem = check_closed_loop(self.rules, self.actuation, self.devices)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _scheduler_fits_the_cell(self) -> Config:
        scheduler = self.scheduler
        following = [
            i
            for i, rule in enumerate(self.rules)
            if isinstance(rule, BatteryScheduleConfig | LoadScheduleConfig)
        ]
        if scheduler is None:
            if following:
                kind = self.rules[following[0]].kind
                raise ValueError(
                    f"rules[{following[0]}].kind: {kind} follows the scheduler's plan: add a"
                    " scheduler: section"
                )
            return self
        planned = {ev.name for ev in scheduler.evs} | {tank.name for tank in scheduler.tanks}
        for i, rule in enumerate(self.rules):
            if isinstance(rule, LoadScheduleConfig):
                for j, load in enumerate(rule.loads):
                    if load.name not in planned:
                        raise ValueError(
                            f"rules[{i}].loads[{j}].name: the scheduler plans no load"
                            f" {load.name!r}: it plans {sorted(planned)}"
                        )
        if self.tariff is None:
            raise ValueError("scheduler: plans against the tariff: add a tariff: section")
        tags = tag_index(self.devices)
        for field, tag in scheduler.input_tags():
            if tag not in tags:
                device = tag.split(".", 1)[0]
                known = any(d.name == device for d in self.devices)
                what = "has no such tag" if known else "is not a device"
                raise ValueError(f"scheduler.{field}: unknown tag {tag!r}: {device!r} {what}")
        battery_rules = [i for i in following if isinstance(self.rules[i], BatteryScheduleConfig)]
        if battery_rules and scheduler.battery is None:
            raise ValueError(
                f"rules[{battery_rules[0]}].kind: battery_schedule needs scheduler.battery:"
                " the plan has no battery kW without it"
            )
        return self

    @model_validator(mode="after")
    def _prices_for_the_rules(self) -> Config:
        # One tariff per config: the rules that weigh prices read the top-level one.
        if self.tariff is not None:
            return self
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, BatteryPeakShavingConfig):
                continue
            if rule.dear_recharge_soc_pct is not None:
                raise ValueError(
                    f"rules[{i}].dear_recharge_soc_pct: weighs the price now against the"
                    " tariff's lowest: add the site's tariff: section (docs/configuration.md,"
                    " `tariff` and `scheduler`)"
                )
        return self

    @model_validator(mode="after")
    def _battery_setpoints_refreshed(self) -> Config:
        # A SunSpec 124 rate (OutWRte) held unchanged is written once; the battery's revert
        # timer (InOutWRte_RvrtTms) then hands it back to its local program, unseen by any
        # check: refused, not warned (docs/rules.md, "Battery rules": why).
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, BatteryControlConfig):
                continue
            output = self.actuation.outputs.get(rule.setpoint)
            if output is None or output.refresh is None:
                raise ValueError(
                    f"rules[{i}].setpoint: {rule.setpoint} is a battery's rate, which its revert"
                    " timer (SunSpec 124 InOutWRte_RvrtTms) hands back to its local program when"
                    f" it is not written again: set actuation.outputs.{rule.setpoint}.refresh"
                    " shorter than the timer (e.g. 10s for a 30 s timer)"
                )
        return self

    @model_validator(mode="after")
    def _battery_gives_before_a_shed(self) -> Config:
        # battery_schedule with min_run_kw holds the plan's peak last in the window; a
        # load-shedding rule on the same meter would shed first: the window must be held at
        # once before it reaches the shed's trigger (docs/rules.md, "battery_schedule").
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, BatteryScheduleConfig) or rule.min_run_kw is None:
                continue
            for j, shed in enumerate(self.rules):
                if not isinstance(shed, PeakShavingConfig) or shed.power != rule.power:
                    continue
                trigger = shed.limit_kw - shed.margin_kw
                if rule.hold_at_once_above_kw is None or rule.hold_at_once_above_kw > trigger:
                    raise ValueError(
                        f"rules[{i}].hold_at_once_above_kw: with min_run_kw the plan's peak is"
                        f" held last in the window, and rules[{j}] ({shed.name}) sheds loads on"
                        f" the same meter from a window heading above {trigger:g} kW (limit_kw"
                        " - margin_kw): set hold_at_once_above_kw at or under it, a few kW"
                        " under for the battery's ramp, so the battery gives before a load is"
                        " shed"
                    )
        return self

    @model_validator(mode="after")
    def _sparkplug_fits_the_cell(self) -> Config:
        if not self.sparkplug.enabled:
            return self
        problem = metric_name_clash(self.devices)
        if problem is not None:
            raise ValueError(problem)
        if self.sparkplug.write_ttl > self.actuation.manual_max_ttl:
            raise ValueError(
                "sparkplug.write_ttl is longer than actuation.manual_max_ttl: every DCMD write "
                "would be refused"
            )
        return self

    @property
    def base_topic(self) -> str:
        return self.mqtt.base_topic or f"edgecell/{self.gateway.id}"


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path
    digest: str  # sha256 of the file, published in the birth message


class ConfigError(Exception):
    """A config file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- YAML with line numbers -----------------------------------------------------------------

# What a config may be (docs/configuration.md, "Limits"). The largest real configs are a few
# MB: 130,000 Modbus tags in block style are 13 MB and 1.4 million values.
MAX_CONFIG_BYTES = 32 * 1024**2
# Mappings and lists inside each other; a real config is at most 7 deep.
MAX_DEPTH = 32
# Values (scalars, mappings, lists) once aliases are expanded: what validation walks; about
# 180,000 Modbus tags.
MAX_NODES = 2_000_000
# Items of one list or mapping: a Modbus device has at most 65,536 registers to name.
MAX_ITEMS = 100_000
# Validation errors (about 1 KB each, counted at each model they pass through) collected before
# validation stops; the first problems are then found again in the first HEAD_ITEMS items of
# every list and mapping.
ERROR_BUDGET = 100_000
HEAD_ITEMS = 100
# Problems reported for one file; the rest are counted.
MAX_PROBLEMS = 50
# Characters of a value, key or line an error repeats before it is cut.
MAX_SHOWN = 64
MAX_LINE = 500

Path_ = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it (40x faster than the pure-Python one).
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def shown(value: str) -> str:
    """`value` as an error repeats it: its repr, cut after MAX_SHOWN characters with its length."""
    if len(value) <= MAX_SHOWN:
        return repr(value)
    head = repr(value[:MAX_SHOWN])
    return f"{head[:-1]}…{head[-1]} ({len(value)} characters)"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class _RefusedError(Exception):
    """The file is refused before it is built: too deep, too many values, an unknown alias."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class _Anchor:
    value: Any
    raw: Any  # a scalar's value before ${VAR} expansion; None for a mapping or list
    size: int  # values it stands for, aliases in it expanded
    height: int  # mappings and lists nested in it, itself included


_EXPECT_KEY: Any = object()  # a mapping waits for its next key
_BAD_KEY: Any = object()  # the key was not a plain value: its value is dropped
_BUILDING_BAD_KEY: Any = object()  # a mapping or list is being read as a key


class _Frame:
    """A mapping or list being built."""

    __slots__ = ("anchor", "container", "height", "key", "path", "start")

    def __init__(self, container: Any, path: Path_, anchor: str | None, start: int) -> None:
        self.container = container
        self.path = path
        self.anchor = anchor
        self.start = start
        self.key: Any = _EXPECT_KEY
        self.height = 0


class _Builder:
    """YAML text -> plain data, from the parser's events, without recursion and without a node
    tree: the events stream through, so memory is the data alone. Counts values as they come
    (aliases by what they expand to) and nesting, and stops at MAX_NODES and MAX_DEPTH. With
    `lines_of`, also notes the line of the mapping keys and list items at those paths (only a
    config with errors needs them, so the first pass goes without)."""

    def __init__(self, text: str, *, lines_of: set[Path_] | None = None) -> None:
        self.text = text
        self.lines: dict[Path_, int] | None = None if lines_of is None else {}
        self._wanted = lines_of or set()
        self.problems: list[tuple[int, str, str]] = []
        self._anchors: dict[str, _Anchor] = {}
        self._stack: list[_Frame] = []
        self._nodes = 0
        self._max_nodes = MAX_NODES
        self._max_depth = MAX_DEPTH
        self._max_items = MAX_ITEMS
        # Resolves and constructs scalars (ints, floats, bools, dates) as yaml.safe_load does.
        self._scalars = yaml.SafeLoader("")
        self._constructed: dict[tuple[Any, str, Any], Any] = {}
        self._strings: dict[str, str] = {}

    def build(self) -> Any:
        loader = _Loader(self.text)
        root: Any = None
        documents = 0
        try:
            while loader.check_event():
                event = loader.get_event()
                kind = type(event)
                if kind is yaml.ScalarEvent:
                    self._scalar(event)
                elif kind is yaml.MappingStartEvent:
                    self._push(event, {})
                elif kind is yaml.SequenceStartEvent:
                    self._push(event, [])
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    frame = self._stack.pop()
                    height = frame.height + 1
                    if frame.anchor is not None:
                        size = self._nodes - frame.start
                        self._anchors[frame.anchor] = _Anchor(frame.container, None, size, height)
                    self._add(frame.container, event, height)
                elif kind is yaml.AliasEvent:
                    self._alias(event)
                elif kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        raise _RefusedError(
                            event.start_mark.line + 1, "a config is one YAML document, not several"
                        )
                elif kind is yaml.DocumentEndEvent:
                    root = self._root
        finally:
            loader.dispose()
        return root

    _root: Any = None

    # --- events ---

    def _count(self, event: Any, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > self._max_nodes:
            raise _RefusedError(
                event.start_mark.line + 1,
                f"aliases expand to more than {self._max_nodes} values, the most a config may have"
                if type(event) is yaml.AliasEvent
                else f"more than {self._max_nodes} values, the most a config may have",
            )

    def _too_deep(self, event: Any, height: int) -> None:
        if len(self._stack) + height > self._max_depth:
            raise _RefusedError(
                event.start_mark.line + 1,
                f"nested deeper than {self._max_depth} levels, the most a config may be",
            )

    def _push(self, event: Any, container: Any) -> None:
        self._count(event, 1)
        self._too_deep(event, 1)
        line = event.start_mark.line + 1
        if event.tag not in _COLLECTION_TAGS:
            self.problems.append(
                (line, _dotted(self._child_path()), f"YAML tag {event.tag} is not supported")
            )
        top = self._stack[-1] if self._stack else None
        if top is not None and top.key is _EXPECT_KEY and type(top.container) is dict:
            self.problems.append(
                (line, _dotted(top.path), "a key must be a plain value, not a mapping or list")
            )
            top.key = _BUILDING_BAD_KEY
            path = top.path
        else:
            path = self._child_path(line)
        self._stack.append(_Frame(container, path, event.anchor, self._nodes - 1))

    def _scalar(self, event: Any) -> None:
        self._count(event, 1)
        top = self._stack[-1] if self._stack else None
        if top is not None and top.key is _EXPECT_KEY and type(top.container) is dict:
            # Keys stay as written: `1:` is the key "1". One string object per distinct key
            # (130,000 tags have 650,000 keys and a dozen distinct ones).
            key = self._strings.setdefault(event.value, event.value)
            if event.anchor is not None:
                self._anchors[event.anchor] = _Anchor(key, key, 1, 0)
            self._set_key(top, key, event.start_mark.line + 1)
            return
        value = self._construct(event)
        raw = value
        if top is not None and top.key == "password":
            value = self._password(value, event)
        if type(value) is str and "${" in value:
            value = self._expand_env(value, event)
        if event.anchor is not None:
            self._anchors[event.anchor] = _Anchor(value, raw, 1, 0)
        self._add(value, event, 0)

    def _alias(self, event: Any) -> None:
        anchor = self._anchors.get(event.anchor)
        line = event.start_mark.line + 1
        if anchor is None:
            raise _RefusedError(line, f"alias *{event.anchor} names no anchor before it")
        self._count(event, anchor.size)
        self._too_deep(event, anchor.height)
        top = self._stack[-1] if self._stack else None
        if top is not None and top.key is _EXPECT_KEY and type(top.container) is dict:
            if isinstance(anchor.raw, str):
                self._set_key(top, anchor.raw, line)
            else:
                self.problems.append((line, _dotted(top.path), "a key must be a plain value"))
                top.key = _BAD_KEY
            return
        value = anchor.value
        if top is not None and top.key == "password" and anchor.raw is not None:
            # Judged by what the anchor wrote: a '${VAR}' reference passes, a literal does not.
            value = value if self._password(anchor.raw, event) is not None else None
        self._add(value, event, anchor.height)

    # --- building ---

    def _child_path(self, line: int | None = None) -> Path_:
        """The path of the value about to be added (noting its line, if lines are kept)."""
        if not self._stack:
            return ()
        top = self._stack[-1]
        if type(top.container) is dict:
            key = top.key
            return (*top.path, key) if isinstance(key, str) else top.path
        path = (*top.path, len(top.container))
        if line is not None and self.lines is not None and path in self._wanted:
            self.lines[path] = line
        return path

    def _set_key(self, top: _Frame, key: str, line: int) -> None:
        if key in top.container:
            self.problems.append((line, _dotted((*top.path, key)), "duplicate key"))
        top.key = key
        if self.lines is not None and (path := (*top.path, key)) in self._wanted:
            self.lines[path] = line

    def _add(self, value: Any, event: Any, height: int) -> None:
        stack = self._stack
        if not stack:
            self._root = value
            return
        top = stack[-1]
        top.height = max(height, top.height)
        container = top.container
        if len(container) >= self._max_items:
            raise _RefusedError(
                event.start_mark.line + 1,
                f"more than {self._max_items} items in one list or mapping, the most a config "
                "may have",
            )
        if type(container) is list:
            if self.lines is not None:  # a mapping or list item's line was noted at its start
                path = (*top.path, len(container))
                if path in self._wanted:
                    self.lines.setdefault(path, event.start_mark.line + 1)
            container.append(value)
            return
        key = top.key
        if key is _BUILDING_BAD_KEY:
            top.key = _BAD_KEY
            return
        top.key = _EXPECT_KEY
        if key is not _BAD_KEY:
            container[key] = value

    def _construct(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._scalars.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, event.value, event.implicit
            )
        if tag == _STR_TAG:
            text: str = event.value
            return self._strings.setdefault(text, text) if len(text) <= MAX_SHOWN else text
        cache_key = (tag, event.value, event.style)
        try:
            return self._constructed[cache_key]
        except KeyError:
            pass
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = self._scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.append(
                (event.start_mark.line + 1, _dotted(self._child_path()), f"not a value: {problem}")
            )
            value = None
        finally:
            self._scalars.constructed_objects.clear()
        self._constructed[cache_key] = value
        return value

    def _password(self, value: Any, event: Any) -> Any:
        # Secrets never in YAML: only a reference to the environment (or password_file:).
        is_reference = isinstance(value, str) and _SECRET_REF.fullmatch(value) is not None
        if value is None or is_reference:
            return value
        self.problems.append(
            (
                event.start_mark.line + 1,
                _dotted(self._child_path()),
                "a literal password is refused: use password_file: or '${ENV_VAR}'",
            )
        )
        return None

    def _expand_env(self, value: str, event: Any) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                self.problems.append(
                    (
                        event.start_mark.line + 1,
                        _dotted(self._child_path()),
                        f"environment variable {name} is not set",
                    )
                )
                return ""
            return os.environ[name]

        return _ENV_REF.sub(replace, value)


def _lines_of(text: str, paths: list[Path_]) -> dict[Path_, int]:
    """The line of each of `paths` (and of the items that contain them) in config text, read a
    second time: a config without errors never needs them."""
    wanted = {path[:i] for path in paths for i in range(1, len(path) + 1)}
    builder = _Builder(text, lines_of=wanted)
    builder.build()
    assert builder.lines is not None
    return builder.lines


def _line(lines: dict[Path_, int], path: Path_) -> int:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = _cut(part, MAX_SHOWN)
            if not name.strip() or name != name.strip():
                name = repr(name)  # a key of spaces (or padded) is shown as one
            out += f".{name}" if out else name
    return out or "(top)"


def _data_path(data: Any, loc: tuple[str | int, ...]) -> Path_:
    """Drop the parts of a pydantic error location that are not in the data (union tags such as
    'modbus', validator names), so the path points at the YAML the user wrote."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_mapping = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            current = current[part]
            path.append(part)
    return tuple(path)


# A validator message may start with the path of the item it is about, relative to the model
# that raised it ("tags[3].name: duplicate tag name"), so the error names that item's line.
_RELATIVE_PATH = re.compile(r"^((?:[A-Za-z_]\w*|\[\d+\])(?:\.[A-Za-z_]\w*|\[\d+\])*): (.+)$", re.S)
_PATH_PART = re.compile(r"\[(\d+)\]|([A-Za-z_]\w*)")


def _message(error: Any) -> tuple[tuple[str | int, ...], str]:
    """The error's message, and the extra path its message names (see _RELATIVE_PATH)."""
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        return (), "unknown key"
    given = error.get("input")
    if isinstance(given, str) and len(given) > MAX_SHOWN:
        # Validators quote what they were given: a 10 MB value is quoted by its start.
        msg = msg.replace(repr(given), shown(given))
    match = _RELATIVE_PATH.match(msg)
    if match is None:
        return (), msg
    extra: list[str | int] = [
        int(index) if index else name for index, name in _PATH_PART.findall(match.group(1))
    ]
    return tuple(extra), match.group(2)


def _bounded(problems: list[str], filename: str, total: int | None = None) -> list[str]:
    """At most MAX_PROBLEMS lines of at most MAX_LINE characters, and a count of the rest of
    `total` (default: of `problems`)."""
    out = [_cut(problem, MAX_LINE) for problem in problems[:MAX_PROBLEMS]]
    more = (len(problems) if total is None else total) - len(out)
    if more > 0:
        out.append(f"{filename}: ... and {more} more problems")
    return out


def parse_config(text: str, filename: str) -> Config:
    """Parse and validate config text; `filename` is what error lines name."""
    builder = _Builder(text)
    try:
        data = builder.build()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(_bounded([f"{filename}:{line}: (yaml): {problem}"], filename)) from None
    except _RefusedError as exc:
        raise ConfigError([f"{filename}:{exc.line}: (yaml): {exc.message}"]) from None
    if data is None:
        data = {}
    problems = [f"{filename}:{line}: {field}: {msg}" for line, field, msg in builder.problems]
    if not isinstance(data, dict):
        problems.append(f"{filename}:1: (top): a config is a mapping with gateway, mqtt, devices")
        raise ConfigError(_bounded(problems, filename))
    config, errors, count = _validate(data)
    if config is None:
        found, total = _error_paths(data, errors)
        if count < 0:
            found = found or [((), "(top): too many problems to list")]
            problems.extend(
                f"{filename}:{line}: {message}" for line, message in _place(text, found)
            )
            first = [_cut(problem, MAX_LINE) for problem in problems[:MAX_PROBLEMS]]
            more = f"{filename}: ... and more problems, too many to count"
            raise ConfigError([*first, more])
    else:
        found = _missing_files(config)
        total = len(found)
        if not found and not problems:
            return config
    total += len(problems)
    shown_now = found[: max(MAX_PROBLEMS - len(problems), 0)]
    problems.extend(f"{filename}:{line}: {message}" for line, message in _place(text, shown_now))
    raise ConfigError(_bounded(problems, filename, total))


def _place(text: str, found: list[tuple[Path_, str]]) -> list[tuple[int, str]]:
    """(line, message) of each (path, message)."""
    lines = _lines_of(text, [path for path, _ in found])
    return [(_line(lines, path), message) for path, message in found]


def _validate(data: dict[str, Any]) -> tuple[Config | None, list[Any], int]:
    """The config, or the errors to report and how many there are in all (-1: too many to
    count)."""
    try:
        return Config.model_validate(data, context={"budget": ErrorBudget(ERROR_BUDGET)}), [], 0
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        return None, errors, len(errors)
    except TooManyProblemsError:
        pass
    # A file in which (nearly) everything is wrong: its first problems are in the first items of
    # its lists and mappings.
    try:
        Config.model_validate(_head(data), context={"budget": ErrorBudget(ERROR_BUDGET)})
    except ValidationError as exc:
        return None, exc.errors(include_url=False, include_context=False), -1
    except TooManyProblemsError:
        pass
    return None, [], -1


def _head(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _head(item) for key, item in itertools.islice(value.items(), HEAD_ITEMS)}
    if isinstance(value, list):
        return [_head(item) for item in value[:HEAD_ITEMS]]
    return value


def _error_paths(data: dict[str, Any], errors: list[Any]) -> tuple[list[tuple[Path_, str]], int]:
    """(path in the data, `field: message`) of the first MAX_PROBLEMS errors worth a line, and
    how many are worth one."""
    # A NaN given to `bool | float` fails both: that it is not finite is the problem.
    not_finite = {error["loc"][:-1] for error in errors if error["type"] == "finite_number"}
    out: list[tuple[Path_, str]] = []
    total = 0
    for error in errors:
        given = error.get("input")
        if (
            error["type"] != "finite_number"
            and isinstance(given, float)
            and not math.isfinite(given)
            and error["loc"][:-1] in not_finite
        ):
            continue
        total += 1
        if len(out) == MAX_PROBLEMS:
            continue
        extra, message = _message(error)
        path = _data_path(data, (*error["loc"], *extra))
        field = _dotted(path)
        if extra and isinstance(extra[-1], str) and path[-1:] != extra[-1:]:
            # The message names a key the file leaves at its default: the line is its
            # section's, the field still the key ("scheduler.replan: ...").
            field = _dotted((*path, extra[-1]))
        if error["type"] == "missing" and error["loc"]:
            field = _dotted((*path, error["loc"][-1]))
        out.append((path, f"{field}: {message}"))
    return out, total


def _missing_files(config: Config) -> list[tuple[Path_, str]]:
    """Files a config names must exist when it is loaded, not when a reconnect first needs them."""
    problems: list[tuple[Path_, str]] = []
    checks: list[tuple[Path_, Path | None]] = [
        (("mqtt", "password_file"), config.mqtt.password_file)
    ]
    if config.mqtt.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            checks.append((("mqtt", "tls", key), getattr(config.mqtt.tls, key)))
    for index, broker in enumerate(config.mqtt.brokers or ()):
        checks.append((("mqtt", "brokers", index, "password_file"), broker.password_file))
        if broker.tls is not None:
            for key in ("ca_file", "cert_file", "key_file"):
                checks.append((("mqtt", "brokers", index, "tls", key), getattr(broker.tls, key)))
    for path, file in checks:
        if file is not None and not file.is_file():
            problems.append((path, f"{_dotted(path)}: file not found: {file}"))
    return problems


def load_config(path: Path) -> LoadedConfig:
    try:
        with path.open("rb") as file:
            # At most one byte more than a config may be: /dev/zero is not read to the end.
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}:0: (file): cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{path}:0: (file): larger than {MAX_CONFIG_BYTES} bytes "
                f"({MAX_CONFIG_BYTES // 1024**2} MiB), the most a config may be"
            ]
        )
    digest = hashlib.sha256(raw).hexdigest()[:16]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}:1: (file): not UTF-8 text ({exc.reason})"]) from None
    del raw  # the text is what is parsed
    return LoadedConfig(config=parse_config(text, str(path)), path=path, digest=digest)
