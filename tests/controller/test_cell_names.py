"""Nothing in controller/ knows the demo cell: no machine, heated tank, charger or device name of
the shipped scenarios (configs/sim/) and configs (configs/) appears in its source, in either
spelling (`press-1` or `press_1`, as in a tag `press_1_state`). A cell is described by its
scenario and config, never by names in code (issue #14, item 4).

The plant's fixed subsystems (`compressor`, `site_meter`, ...: the points every simulated cell
has, whatever its equipment is called) are vocabulary, not names, and are not looked for."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from drivers.sim.plant.plant import Plant
from drivers.sim.scenario import Scenario, load_scenario, scenario_names

ROOT = Path(__file__).parents[2]


def equipment(scenario: Scenario) -> set[str]:
    return (
        {m.name for m in scenario.machines}
        | {t.name for t in scenario.heated_tanks}
        | {c.name for c in scenario.ev_chargers}
    )


def shipped_names() -> set[str]:
    names: set[str] = set()
    for name in scenario_names():
        scenario = load_scenario(name)
        names |= equipment(scenario)
        names |= {d.name for d in scenario.modbus_devices}
        names |= {d.name for d in scenario.opcua_devices}
    for path in (ROOT / "configs").rglob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            names |= {device["name"] for device in data.get("devices") or []}
    return names


def plant_subsystems() -> set[str]:
    scenario = load_scenario("normal-day")
    prefixes = {point.split(".", 1)[0] for point in Plant(scenario).point_names()}
    return prefixes - equipment(scenario)


def test_the_shipped_names_are_found() -> None:
    names = shipped_names()
    assert {"press-1", "washer-1", "wash-tank", "ev-charger", "process-plc"} <= names
    assert "compressor" in plant_subsystems()


def test_controller_source_names_no_machine_tank_charger_or_device_of_the_shipped_cells() -> None:
    spellings = {
        spelling
        for name in shipped_names()
        for spelling in (name, name.replace("-", "_"))
        if spelling not in plant_subsystems()
    }
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, sorted(spellings))) + r")(?![A-Za-z0-9])"
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(1)}"
        for path in sorted((ROOT / "controller").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in pattern.finditer(line)
    ]
    assert found == []
