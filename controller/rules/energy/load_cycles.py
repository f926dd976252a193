"""A compressor's load/unload cycles, cut from its loaded signal, and the DOE/Compressed Air
Challenge leak fraction measured over whole cycles."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from controller.rules.blocks import NoSampleError

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class LoadCycle:
    """One load/unload cycle, from a load to the next: how long, how long loaded, and the kWh
    used while loaded (None when there is no power tag)."""

    end: float
    total_s: float
    loaded_s: float
    loaded_kwh: float | None


class LoadUnloadCycles:
    """Follows a compressor's loaded signal and cuts it into whole cycles (load to next load),
    so a duty is always measured over whole cycles: a window that ends mid-cycle would count a
    half cycle as all loaded or all unloaded."""

    def __init__(self) -> None:
        self.cycles: deque[LoadCycle] = deque()
        self._cycle_start: float | None = None
        self._loaded_s = 0.0
        self._kwh = 0.0
        self._kwh_known = True
        self._last: tuple[float, bool, float | None] | None = None

    def reset(self) -> None:
        self.cycles.clear()
        self._cycle_start = None
        self._last = None

    def add(self, t: float, loaded: bool, power_kw: float | None) -> LoadCycle | None:
        """A reading at time `t` (seconds); returns the cycle it completes, if any."""
        last = self._last
        self._last = (t, loaded, power_kw)
        if last is None or t <= last[0]:
            return None
        t0, was_loaded, p0 = last
        if self._cycle_start is not None and was_loaded:
            self._loaded_s += t - t0
            if p0 is None:
                self._kwh_known = False
            else:
                self._kwh += p0 * (t - t0) / _HOUR
        if loaded and not was_loaded:
            done = None
            if self._cycle_start is not None:
                done = LoadCycle(
                    end=t,
                    total_s=t - self._cycle_start,
                    loaded_s=self._loaded_s,
                    loaded_kwh=self._kwh if self._kwh_known else None,
                )
                self.cycles.append(done)
            self._cycle_start = t
            self._loaded_s = 0.0
            self._kwh = 0.0
            self._kwh_known = True
            return done
        return None

    def since(self, start: float) -> list[LoadCycle]:
        """The whole cycles that began at or after `start`."""
        return [c for c in self.cycles if c.end - c.total_s >= start]

    def ended_after(self, start: float) -> list[LoadCycle]:
        """The whole cycles that ended after `start`: consecutive spans share none, and a span
        shorter than two cycles still gets the cycles it saw end."""
        return [c for c in self.cycles if c.end > start]

    def forget_before(self, start: float) -> None:
        while self.cycles and self.cycles[0].end - self.cycles[0].total_s < start:
            self.cycles.popleft()


def leak_fraction(cycles: list[LoadCycle]) -> float:
    """DOE/CAC load/unload test: leakage = loaded time / (loaded + unloaded time)."""
    total = sum(c.total_s for c in cycles)
    if total <= 0:
        raise NoSampleError("no whole load/unload cycle yet")
    return sum(c.loaded_s for c in cycles) / total
