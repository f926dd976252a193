"""Each rule kind declares its alarms as data (what each indicates, where), carried in every
alarm it raises, and docs/rules.md "Alarms" lists the same (STYLE.md: declared alarms)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.alarms import AlarmBoard, Indicates
from controller.rules.domain import DomainRule, UndeclaredAlarmError
from controller.rules.energy.battery_schedule import BatterySchedule
from controller.rules.energy.chiller_reset import ChillerReset
from controller.rules.energy.compressed_air import CompressedAir
from controller.rules.energy.idle_standby import IdleStandby
from controller.rules.energy.peak_shaving import PeakShaving
from controller.rules.water.cooling_tower_blowdown import CoolingTowerBlowdown
from controller.rules.water.rinse_reuse import RinseReuse
from controller.rules.water.tower_balance import TowerBalance, TowerBalanceConfig
from controller.rules.water.water_leak import WaterLeak

RULES_MD = Path(__file__).parents[2] / "docs" / "rules.md"
KINDS: dict[str, type[DomainRule]] = {
    "peak_shaving": PeakShaving,
    "compressed_air": CompressedAir,
    "chiller_reset": ChillerReset,
    "idle_standby": IdleStandby,
    "water_leak": WaterLeak,
    "cooling_tower_blowdown": CoolingTowerBlowdown,
    "tower_balance": TowerBalance,
    "rinse_reuse": RinseReuse,
    "battery_schedule": BatterySchedule,
}


def documented() -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, what) -> (indicates, location) from the table in docs/rules.md "Alarms"."""
    text = RULES_MD.read_text(encoding="utf-8")
    section = text.split("\n### Alarms\n", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` `\.(\w+)` \| `(\w+)` \| `(\w+)` \|", section, re.M)
    return {(kind, what): (indicates, location) for kind, what, indicates, location in rows}


def declared() -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (kind, what): (alarm.indicates.value, alarm.location)
        for kind, cls in KINDS.items()
        for what, alarm in cls.ALARMS.items()
    }


def test_the_documented_table_is_what_the_rule_kinds_declare() -> None:
    assert documented() == declared()
    assert ("tower_balance", "leak") in declared()


def test_every_alarm_a_rule_module_sets_is_declared() -> None:
    for kind, cls in KINDS.items():
        source = Path(__import__(cls.__module__, fromlist=["x"]).__file__ or "").read_text()
        set_here = set(re.findall(r'set_alarm\(\s*"(\w+)"', source))
        assert set_here <= set(cls.ALARMS), kind


def tower() -> TowerBalance:
    return TowerBalance(
        TowerBalanceConfig.model_validate(
            {
                "name": "tower",
                "kind": "tower_balance",
                "makeup_flow": "plc.makeup",
                "conductivity": "plc.cond",
                "makeup_us_cm": 500,
                "blowdown_flow": "plc.bleed",
                "volume_m3": 10,
                "threshold_m3_h": 0.2,
            }
        )
    )


def test_an_undeclared_alarm_is_refused() -> None:
    with pytest.raises(UndeclaredAlarmError, match="tower_balance does not declare"):
        tower().set_alarm("flood", True)


def test_the_payload_carries_what_the_alarm_indicates_and_where() -> None:
    rule = tower()
    rule.set_alarm("leak", True, "probable basin leak", {"leak_m3_h": 0.6})
    board = AlarmBoard()
    board.observe(rule.alarm_conditions(), 1000)
    payload = board["tower.leak"].payload(1000)
    assert payload["indicates"] == Indicates.WATER_LEAK == "water_leak"
    assert payload["location"] == "cooling_tower"
    assert payload["steps"] == 0
    assert payload["stepped_at"] is None
