"""Hostile input on the gateway's topics, through a real mosquitto into the running console
(textual's pilot, headless): malformed, oversized and unexpected payloads, markup and terminal
escapes in names and messages. The console keeps running, shows what it ignored, shows names as
written, and goes on taking good messages."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import orjson

from controller.watch.app import WatchApp
from controller.watch.link import BrokerSettings
from tests.watch.screen import until_shown

BASE = "edgecell/hostile"


async def test_hostile_payloads_do_not_crash_the_console(mosquitto: Any) -> None:
    settings = BrokerSettings(host=mosquitto.host, port=mosquitto.port, base=BASE, by="t")
    app = WatchApp(settings, gateway="hostile", broker_label="local")
    hostile: list[tuple[str, bytes, bool]] = [
        (f"{BASE}/status", b"\x00\xff\xfe", True),
        (
            f"{BASE}/health",
            b'{"mqtt": "not an object", "loop_lag_ms": "high", "rss_bytes": 1e400}',
            False,
        ),
        (f"{BASE}/devices/press/status", b"[]", True),
        (
            f"{BASE}/devices/[bold]x[red]/status",
            orjson.dumps(
                {
                    "state": "[/]",
                    "last_error": "\x1b[2J\x1b]0;pwned\x07[red]boom",
                    "latency_ms": "fast",
                    "polls": -1e308,
                }
            ),
            True,
        ),
        (f"{BASE}/data/press", b"x" * (5 * 1024 * 1024), False),  # over the 4 MiB bound
        (f"{BASE}/data/press", orjson.dumps({"values": {"t": "not a sample"}}), False),
        (
            f"{BASE}/data/press",
            orjson.dumps({"values": {"[b]tag": {"v": [1] * 10_000, "q": 7, "ts": "now"}}}),
            False,
        ),
        (f"{BASE}/tags/press/deep", b"[" * 50_000 + b"]" * 50_000, True),
        (
            f"{BASE}/rules/[red]r/state",
            orjson.dumps(
                {"mode": {"x": 1}, "reason": "[/bold]", "outputs": {"a.b": {"deep": [1, 2]}}}
            ),
            True,
        ),
        (
            f"{BASE}/alarms/a",
            orjson.dumps({"state": "active", "message": "[link=file:///]x", "first": 2**62}),
            True,
        ),
        (
            f"{BASE}/events/writes",
            orjson.dumps({"outcome": 5, "old": {"a": 1}, "new": None}),
            False,
        ),
        (f"{BASE}/plan", orjson.dumps({"steps": [{"[x]": "y"}, 5, None], "cost": "[/]"}), True),
        (f"{BASE}/cmd/response", b"not json", False),
        (f"{BASE}/unexpected/topic/levels", b"{}", False),
    ]
    async with app.run_test(size=(160, 40)) as pilot:
        # "devices 0/0 connected" is on screen from the start: the broker's own word says the
        # console has subscribed (a message published before it is not for this console).
        await until_shown(
            app, lambda s: "broker local connected" in s, what="the console connected"
        )
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="hostile") as client:
            for topic, payload, retain in hostile:
                await client.publish(topic, payload, qos=1, retain=retain)
            # And a good message after them all: the console still takes it.
            await client.publish(
                f"{BASE}/data/press",
                orjson.dumps({"values": {"speed": {"v": 12.5, "q": "good", "ts": 1}}}),
                qos=1,
            )
            screen = await until_shown(
                app,
                lambda s: "ignored 6 messages" in s and "tags 2" in s,
                what="the bad messages counted and the good one taken",
            )
            for tab, shown in (
                ("1", "[bold]x[red]"),
                ("3", "[/bold]"),
                ("4", "[link=file:///]x"),
                ("6", "[x]"),
                ("2", "press.speed"),
            ):
                await pilot.press(tab)
                screen = await until_shown(app, lambda s, shown=shown: shown in s, what=shown)
            assert "12.5" in screen
            await pilot.press("1")
            screen = await until_shown(app, lambda s: "boom" in s, what="the device's error")
            assert "\x1b" not in screen
            assert "\x07" not in screen
            # The command palette is another screen: the redraw goes on under it.
            await pilot.press("ctrl+p")
            await asyncio.sleep(1)
            await pilot.press("escape")
            await until_shown(app, lambda s: "boom" in s, what="back from the palette")
        assert app.is_running
    # Leaving run_test re-raises anything the app raised while running.
