"""pydantic v2 models of the YAML config, and a loader whose errors name file, line and field.

`load_config(path)` raises `ConfigError`, whose `problems` are `file:line: field.path: message`
lines: every problem in the file at once, not the first only.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from controller.configtypes import Name, StrictModel
from controller.mqtt.config import MqttConfig
from controller.rules.config import ActuationConfig, RuleConfig, check_closed_loop
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

Path_ = tuple[str | int, ...]


class _Located:
    """YAML data plus the line of every mapping key and sequence item, by path."""

    def __init__(self, source: str) -> None:
        self.lines: dict[Path_, int] = {}
        self.problems: list[tuple[int, str, str]] = []
        self.source = source
        # One loader turns every scalar node into its value (a loader per scalar took most of
        # the load time of a large config: 400,000 scalars, 10 s).
        self._scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                child = (*path, key)
                if key in out:
                    self.problems.append(
                        (key_node.start_mark.line + 1, _dotted(child), "duplicate key")
                    )
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        value = self._scalars.construct_object(node, deep=True)
        self._scalars.constructed_objects.clear()
        # Secrets never in YAML: only a reference to the environment (or password_file:).
        is_reference = isinstance(value, str) and _SECRET_REF.fullmatch(value) is not None
        if path and path[-1] == "password" and value is not None and not is_reference:
            self.problems.append(
                (
                    node.start_mark.line + 1,
                    _dotted(path),
                    "a literal password is refused: use password_file: or '${ENV_VAR}'",
                )
            )
            return None
        if isinstance(value, str):
            value = self._expand_env(value, node, path)
        return value

    def _expand_env(self, value: str, node: yaml.Node, path: Path_) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                self.problems.append(
                    (
                        node.start_mark.line + 1,
                        _dotted(path),
                        f"environment variable {name} is not set",
                    )
                )
                return ""
            return os.environ[name]

        return _ENV_REF.sub(replace, value)

    def line_of(self, path: Path_) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
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
    match = _RELATIVE_PATH.match(msg)
    if match is None:
        return (), msg
    extra: list[str | int] = [
        int(index) if index else name for index, name in _PATH_PART.findall(match.group(1))
    ]
    return tuple(extra), match.group(2)


def parse_config(text: str, filename: str) -> Config:
    """Parse and validate config text; `filename` is what error lines name."""
    located = _Located(text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{filename}:{line}: (yaml): {problem}"]) from None
    data = located.build(root, ()) if root is not None else {}
    problems = [f"{filename}:{line}: {field}: {msg}" for line, field, msg in located.problems]
    if not isinstance(data, dict):
        problems.append(f"{filename}:1: (top): a config is a mapping with gateway, mqtt, devices")
        raise ConfigError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            extra, message = _message(error)
            loc = (*error["loc"], *extra)
            path = _data_path(data, loc)
            line = located.line_of(path)
            field = _dotted(path)
            if error["type"] == "missing" and error["loc"]:
                field = _dotted((*path, error["loc"][-1]))
            problems.append(f"{filename}:{line}: {field}: {message}")
        raise ConfigError(problems) from None
    problems.extend(_missing_files(config, located, filename))
    if problems:
        raise ConfigError(problems)
    return config


def _missing_files(config: Config, located: _Located, filename: str) -> list[str]:
    """Files a config names must exist when it is loaded, not when a reconnect first needs them."""
    problems: list[str] = []
    checks: list[tuple[Path_, Path | None]] = [
        (("mqtt", "password_file"), config.mqtt.password_file)
    ]
    if config.mqtt.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            checks.append((("mqtt", "tls", key), getattr(config.mqtt.tls, key)))
    for path, file in checks:
        if file is not None and not file.is_file():
            problems.append(
                f"{filename}:{located.line_of(path)}: {_dotted(path)}: file not found: {file}"
            )
    return problems


def load_config(path: Path) -> LoadedConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}:0: (file): cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}:1: (file): not UTF-8 text ({exc.reason})"]) from None
    config = parse_config(text, str(path))
    return LoadedConfig(config=config, path=path, digest=hashlib.sha256(raw).hexdigest()[:16])
