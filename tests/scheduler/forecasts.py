"""Cloud forecasts as a weather service would send them on `{base}/forecast/pv`."""

from __future__ import annotations

from typing import Any

import orjson

HOUR_MS = 3_600_000


def cloud_forecast(issued_ms: int, *, factor: float = 0.9, hours: int = 36) -> dict[str, Any]:
    return {
        "issued_ms": issued_ms,
        "source": "test-weather",
        "points": [{"at_ms": issued_ms + h * HOUR_MS, "factor": factor} for h in range(hours + 1)],
    }


def payload(data: Any) -> bytes:
    return orjson.dumps(data)
