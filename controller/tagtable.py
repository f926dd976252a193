"""The latest sample of every tag, and which samples changed.

Drivers write into it, the publisher takes what changed, the rule engine takes consistent
snapshots. It is the one place that decides what "changed" means: a new value or a new quality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from controller.model import Sample


class TagTable:
    """Latest sample per tag key (`device.tag`), with change notification."""

    def __init__(self) -> None:
        self._latest: dict[str, Sample] = {}
        self._changed = asyncio.Event()
        self.version = 0  # bumps on every change, so readers can tell a snapshot is current

    def update(self, samples: Iterable[Sample]) -> list[Sample]:
        """Store samples; return those whose value or quality differs from the previous one."""
        changed: list[Sample] = []
        latest = self._latest
        # A batch is usually one device's: its "device." prefix is built once, not per sample
        # (this loop runs for every tag of every poll).
        device: str | None = None
        prefix = ""
        for sample in samples:
            if sample.device is not device:
                device = sample.device
                prefix = device + "."
            key = prefix + sample.tag
            previous = latest.get(key)
            latest[key] = sample
            if (
                previous is None
                or previous.value != sample.value
                or previous.quality is not sample.quality
                or type(previous.value) is not type(sample.value)
            ):
                changed.append(sample)
        if changed:
            self.version += 1
            self._changed.set()
        return changed

    def get(self, key: str) -> Sample | None:
        return self._latest.get(key)

    def snapshot(self) -> Mapping[str, Sample]:
        """A consistent copy: samples are immutable, so a shallow copy is enough."""
        return MappingProxyType(dict(self._latest))

    def device_samples(self, device: str) -> list[Sample]:
        return [s for s in self._latest.values() if s.device == device]

    def forget_device(self, device: str) -> None:
        """Drop a device's tags (it was removed from the config)."""
        for key in [k for k, s in self._latest.items() if s.device == device]:
            del self._latest[key]

    async def wait_changed(self) -> None:
        """Wait for the next change after this call."""
        self._changed.clear()
        await self._changed.wait()

    def __len__(self) -> int:
        return len(self._latest)
