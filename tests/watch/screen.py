"""What a textual app shows, as text: the same render textual's SVG export makes, as lines."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

from rich.console import Console
from textual.app import App


def screen_text(app: App[object]) -> str:
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, simplify=True))
    return console.export_text()


async def until_shown(
    app: App[object], check: Callable[[str], bool], within: float = 20.0, what: str = ""
) -> str:
    """Wait until the screen's text passes `check`; fail with the screen when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        text = screen_text(app)
        if check(text):
            return text
        if loop.time() > deadline:
            raise AssertionError(f"not on screen within {within} s: {what}\n{text}")
        await asyncio.sleep(0.2)
