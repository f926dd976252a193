"""Turning what arrives on MQTT into text that is safe to put on a terminal.

Every string shown comes from the network: it is cut to a length, and control characters
(escape sequences that would move the cursor or retitle the terminal, bidi overrides that
reorder a line) are replaced. Values are shown to the precision a person reads, never as markup:
the console builds `rich.text.Text` objects, so `[bold]` in a tag name is shown as written.
"""

from __future__ import annotations

import math
import time
import unicodedata
from datetime import datetime
from typing import Any

# Shown in place of a character that must not reach the terminal.
REPLACEMENT = "\ufffd"
# Categories of characters never shown: controls (C0, C1, DEL), format characters (bidi
# overrides, zero-width joiners), surrogates, private use and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def safe(text: str, limit: int = 120) -> str:
    """`text` with unsafe characters replaced, cut to `limit` characters (an ellipsis says so)."""
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    if text.isascii() and text.isprintable():
        return text
    return "".join(REPLACEMENT if unicodedata.category(char) in _HIDDEN else char for char in text)


def number(value: float) -> str:
    """Up to six significant digits (a float32 register's 230.24888610839844 reads 230.249)."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-4):
        return f"{value:.4g}"
    return f"{value:.6g}"


def value(obj: Any, limit: int = 40) -> str:
    """A sample's value: numbers and booleans as a person reads them, text cut, arrays and
    objects summarised by size."""
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, int):
        return safe(str(obj), limit)
    if isinstance(obj, float):
        return number(obj)
    if isinstance(obj, str):
        return safe(obj, limit)
    if isinstance(obj, list):
        return f"[{len(obj)} values]"
    if isinstance(obj, dict):
        return f"{{{len(obj)} keys}}"
    return safe(repr(obj), limit)


def age(ts_ms: int | None, now_s: float | None = None) -> str:
    """How long ago an epoch-ms time was: `0.4s`, `12s`, `5m`, `3h`, `2d`; `?` when unknown.
    A time ahead of this machine's clock (a gateway clock ahead, or the demo's scaled clock)
    reads `0s`."""
    if ts_ms is None:
        return "?"
    seconds = max(0.0, (time.time() if now_s is None else now_s) - ts_ms / 1000)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def clock(ts_ms: int | None) -> str:
    """An epoch-ms time as local `HH:MM:SS` (`YYYY-MM-DD HH:MM` when not today); `?` when
    unknown or out of the calendar."""
    if ts_ms is None:
        return "?"
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000).astimezone()
    except (OverflowError, OSError, ValueError):
        return "?"
    if moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def size(count: float) -> str:
    """Bytes as `512 B`, `1.2 MB` (10^3 steps, as the health topic's figures)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover  (the loop returns at GB)
