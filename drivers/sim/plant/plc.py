"""The PLC side of every writable point: limits the device enforces itself, and a watchdog that
drops remote setpoints when the controller's heartbeat stops changing."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass
class Setpoint:
    """`default` None means the PLC's own (local) control drives the output."""

    default: float | None
    min: float
    max: float
    value: float | None = None

    def __post_init__(self) -> None:
        self.value = self.default


class Plc:
    """One PLC: its setpoints by point name and its heartbeat watchdog."""

    def __init__(self, name: str, heartbeat_timeout: float | None) -> None:
        self.name = name
        self.heartbeat_timeout = heartbeat_timeout
        self.setpoints: dict[str, Setpoint] = {}
        self.heartbeat = 0
        self._last_beat = 0.0  # power-up counts as a beat
        self.remote = True
        self.fallbacks = 0

    @property
    def heartbeat_point(self) -> str:
        return f"{self.name}.heartbeat"

    def add(self, point: str, setpoint: Setpoint) -> None:
        self.setpoints[point] = setpoint

    def beat(self, value: int, now: float) -> None:
        if value != self.heartbeat:
            self.heartbeat = value
            self._last_beat = now
            if not self.remote:
                self.remote = True
                log.info("plc_remote_control", plc=self.name, heartbeat=value)

    def keepalive(self, now: float) -> None:
        """A write that renews the watchdog by itself, as a SunSpec storage's revert timer
        (model 124 InOutWRte_RvrtTms) restarts on every new rate."""
        self._last_beat = now
        if not self.remote:
            self.remote = True
            log.info("plc_remote_control", plc=self.name, keepalive=True)

    def write(self, point: str, value: float) -> None:
        """Apply a remote setpoint within the PLC's limits; ignored in local mode, as a PLC that
        lost its controller keeps to its own program."""
        setpoint = self.setpoints[point]
        if not self.remote:
            log.debug("plc_write_ignored_local", plc=self.name, point=point, value=value)
            return
        setpoint.value = min(setpoint.max, max(setpoint.min, float(value)))

    def tick(self, now: float) -> None:
        """The watchdog: past the timeout with no new heartbeat, every setpoint goes local."""
        if self.heartbeat_timeout is None or not self.remote:
            return
        if now - self._last_beat > self.heartbeat_timeout:
            self.remote = False
            changed = [p for p, sp in self.setpoints.items() if sp.value != sp.default]
            for setpoint in self.setpoints.values():
                setpoint.value = setpoint.default
            if changed:
                self.fallbacks += 1
            # A PLC that never had a controller just stays local: worth a line, not a warning.
            (log.warning if changed else log.info)(
                "plc_heartbeat_lost",
                plc=self.name,
                silent_s=round(now - self._last_beat, 1),
                reverted=changed,
            )
