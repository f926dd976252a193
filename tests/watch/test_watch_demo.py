"""`edgecell watch` driven headless (textual's pilot) against a real demo: the simulated cell,
the daemon and a private mosquitto in their own process (`edgecell demo`, as a user runs it),
the console in this one. The test reads the screen as a person would and uses the keys.

An alarm is raised in the running demo by its config: the cooling tower's conductivity limit is
put under the simulated tower's conductivity (1,100 uS/cm at the start of normal-day), so the
blowdown rule raises `tower_blowdown.conductivity_high` at its first cycle.

With EDGECELL_WATCH_SVG=<path> the test also saves the screen it ends on as SVG (the README's
picture, docs/img/watch.svg).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from controller.cli import build_parser
from controller.watch.app import AlarmsTable, RulesTable, WatchApp
from controller.watch.cli import settings_from_args
from tests.watch.screen import until_shown

ROOT = Path(__file__).resolve().parents[2]
HINT = re.compile(rb"edgecell watch (--broker \S+ --gateway \S+)")
DEVICES = ("compressor", "process-plc", "site-meter", "utility-plc", "water-meter")
ALARM = "tower_blowdown.conductivity_high"


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[list[str]]:
    """`edgecell demo` with the alarm-raising config; yields the arguments of the
    `edgecell watch` command it prints."""
    config = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    (tower,) = (r for r in config["rules"] if r["name"] == "tower_blowdown")
    tower.update(limit_us_cm=1000, margin_us_cm=100, deadband_us_cm=100)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        "--log-format",
        "json",
        "demo",
        "--config",
        str(path),
        "--duration",
        "90",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            match = None
            while match is None:
                line = await process.stdout.readline()
                assert line, "the demo ended without printing how to watch it"
                match = HINT.search(line)
        yield match.group(1).decode().split()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


def row_of(screen: str, name: str) -> str:
    """The screen line of the row that starts with `name` (the first column)."""
    pattern = re.compile(rf"(^|[\s│]){re.escape(name)}\s")
    lines = [line for line in screen.splitlines() if pattern.search(line)]
    assert lines, f"no row {name!r} on screen:\n{screen}"
    return lines[0]


async def test_watch_shows_the_demo_and_sets_a_mode_and_acks_an_alarm(
    demo: list[str],
) -> None:
    args = build_parser().parse_args(["watch", *demo, "--by", "test-operator"])
    settings, gateway, label = settings_from_args(args)
    assert gateway == "demo-cell"
    app = WatchApp(settings, gateway=gateway, broker_label=label)
    async with app.run_test(size=(180, 45)) as pilot:
        # Devices: every device of the demo connected, with its poll latency (published with
        # the health period, 5 s in the demo).
        def polled(screen: str, device: str) -> bool:
            return device in screen and bool(
                re.search(r"connected\s.*\d+(\.\d+)? ms", row_of(screen, device))
            )

        screen = await until_shown(
            app,
            lambda s: "devices 5/5 connected" in s and all(polled(s, d) for d in DEVICES),
            within=30,
            what="the five devices connected, with their latency",
        )
        assert "online" in screen

        # Tags: searched by part of a name; value, quality and age shown.
        await pilot.press("/")
        await pilot.press(*"power_total")
        screen = await until_shown(
            app, lambda s: "site-meter.power_total_kw" in s, what="the site meter's power"
        )
        tag_row = row_of(screen, "site-meter.power_total_kw")
        assert re.search(r"\d+(\.\d+)?\s+good\s+\d+(\.\d)?s", tag_row), tag_row
        assert "site-meter.voltage_l1_v" not in screen  # filtered out
        await pilot.press("enter")

        # Rules: water_leak set to shadow with the key, pressed twice; the answer is shown
        # and the rule's state comes back in shadow.
        await pilot.press("3")
        await until_shown(app, lambda s: "water_leak" in s, what="the rules")
        rules = app.query_one(RulesTable)
        for _ in range(rules.get_row_index("water_leak")):
            await pilot.press("down")
        await pilot.press("s")
        await until_shown(app, lambda s: "press the key again" in s, what="the confirmation")
        await pilot.press("s")
        screen = await until_shown(
            app,
            lambda s: "rules/water_leak/mode: ok" in s and "shadow" in row_of(s, "water_leak"),
            what="the mode change answered and shown",
        )
        assert "mode shadow" in screen

        # Alarms: the tower's alarm raised in the demo, acknowledged with the key.
        await pilot.press("4")
        screen = await until_shown(
            app, lambda s: ALARM in s, within=30, what="the tower's conductivity alarm"
        )
        assert "active" in row_of(screen, ALARM)
        alarms = app.query_one(AlarmsTable)
        for _ in range(alarms.get_row_index(ALARM)):
            await pilot.press("down")
        await pilot.press("a")
        screen = await until_shown(
            app,
            lambda s: "alarms/ack: ok" in s and "acknowledged" in row_of(s, ALARM),
            what="the alarm acknowledged",
        )
        assert "by test-operator" in row_of(screen, ALARM)
        svg = os.environ.get("EDGECELL_WATCH_SVG")
        if svg:
            await pilot.press("3")
            await until_shown(app, lambda s: "outputs" in s, what="the rules tab")
            Path(svg).write_text(app.export_screenshot(title="edgecell watch"))  # noqa: ASYNC240
