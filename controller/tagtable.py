"""The latest sample of every tag, and which samples changed.

Drivers write into it, the publisher takes what changed, the rule engine takes consistent
snapshots. It is the one place that decides what "changed" means: a new value or a new quality.

Samples are kept per device, by tag name: `update` runs for every tag of every poll, and a tag
name from the config is a string whose hash is already known, where a `device.tag` key would be
a new string to build and hash each time (and 60 bytes more per tag for the daemon's life).
Readers still address tags by their gateway-wide key `device.tag`; device names hold no '.'
(`configtypes.Name`), so a key splits at its first '.'.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping

from controller.model import Sample


def _split(key: str) -> tuple[str, str]:
    device, _, tag = key.partition(".")
    return device, tag


class TagSnapshot(Mapping[str, Sample]):
    """A consistent copy of the table, `device.tag` -> Sample: one shallow copy per device
    (samples are immutable), keys made only when iterated."""

    __slots__ = ("_devices",)

    def __init__(self, devices: Mapping[str, Mapping[str, Sample]]) -> None:
        self._devices = {device: dict(tags) for device, tags in devices.items()}

    def __getitem__(self, key: str) -> Sample:
        device, tag = _split(key)
        tags = self._devices.get(device)
        if tags is None or tag not in tags:
            raise KeyError(key)
        return tags[tag]

    def get(self, key: str, default: Sample | None = None) -> Sample | None:  # type: ignore[override]
        device, tag = _split(key)
        tags = self._devices.get(device)
        return default if tags is None else tags.get(tag, default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        device, tag = _split(key)
        tags = self._devices.get(device)
        return tags is not None and tag in tags

    def __iter__(self) -> Iterator[str]:
        for device, tags in self._devices.items():
            for tag in tags:
                yield f"{device}.{tag}"

    def __len__(self) -> int:
        return sum(len(tags) for tags in self._devices.values())


class TagTable:
    """Latest sample per tag key (`device.tag`), with change notification."""

    def __init__(self) -> None:
        self._devices: dict[str, dict[str, Sample]] = {}
        self._changed = asyncio.Event()
        self.version = 0  # bumps on every change, so readers can tell a snapshot is current

    def update(self, samples: Iterable[Sample]) -> list[Sample]:
        """Store samples; return those whose value or quality differs from the previous one."""
        changed: list[Sample] = []
        devices = self._devices
        # A batch is usually one device's: its dict is looked up once, not per sample (this
        # loop runs for every tag of every poll).
        device: str | None = None
        latest: dict[str, Sample] = {}
        for sample in samples:
            if sample.device is not device:
                device = sample.device
                found = devices.get(device)
                if found is None:
                    found = devices[device] = {}
                latest = found
            tag = sample.tag
            previous = latest.get(tag)
            latest[tag] = sample
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
        device, tag = _split(key)
        tags = self._devices.get(device)
        return None if tags is None else tags.get(tag)

    def snapshot(self) -> Mapping[str, Sample]:
        """A consistent copy: samples are immutable, so a shallow copy is enough."""
        return TagSnapshot(self._devices)

    def device_samples(self, device: str) -> list[Sample]:
        return list(self._devices.get(device, {}).values())

    def forget_device(self, device: str) -> None:
        """Drop a device's tags (it was removed from the config)."""
        self._devices.pop(device, None)

    async def wait_changed(self) -> None:
        """Wait for the next change after this call."""
        self._changed.clear()
        await self._changed.wait()

    def __len__(self) -> int:
        return sum(len(tags) for tags in self._devices.values())
