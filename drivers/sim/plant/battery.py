"""A stationary battery behind the site meter: usable energy between SoC limits, charge and
discharge power limits, an inverter whose efficiency falls at part load (a measured curve, not
a constant), DC round-trip losses, standby draw, and two modes as a C&I battery ships them:
local self-consumption (charge from PV surplus, discharge to cover import) and a remote power
setpoint that reverts to local when the controller goes silent (drivers/sim/plant/plc.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivers.sim.plant.plc import Setpoint
from drivers.sim.scenario import BatterySpec


@dataclass(frozen=True)
class BatteryStep:
    ac_kw: float  # + discharging into the site, - charging from it
    loss_kwh: float  # inverter, DC and standby losses over the step
    curtailed_kw: float  # asked for but not given (power or SoC limit, inverter deadband)


def setpoint_for(spec: BatterySpec) -> Setpoint:
    """The remote power setpoint: None (the local program) until the controller writes one."""
    return Setpoint(default=None, min=-spec.max_charge_kw, max=spec.max_discharge_kw)


class Battery:
    def __init__(self, spec: BatterySpec, setpoint: Setpoint) -> None:
        self.spec = spec
        self.setpoint = setpoint
        self.soc_kwh = spec.usable_kwh * spec.initial_soc_pct / 100.0
        self._fractions = [p.fraction for p in spec.inverter_efficiency]
        self._efficiencies = [p.efficiency for p in spec.inverter_efficiency]
        self._dc_one_way = math.sqrt(spec.dc_round_trip)
        self.power_kw = 0.0
        self.charged_kwh = 0.0  # AC energy taken from the site
        self.discharged_kwh = 0.0  # AC energy given to the site
        self.loss_kwh = 0.0
        self.curtailed_kwh = 0.0  # |asked - given| over time

    @property
    def soc_pct(self) -> float:
        return 100.0 * self.soc_kwh / self.spec.usable_kwh

    @property
    def remote(self) -> bool:
        """Following the controller's setpoint (not the local program)."""
        return self.setpoint.value is not None

    def inverter_efficiency(self, kw: float) -> float:
        """Efficiency at `kw` AC (either direction); 0 below the curve's first point, where the
        inverter does not run (its no-load losses exceed the power: it stays in standby)."""
        fraction = abs(kw) / self.spec.rated_kw
        if fraction < self._fractions[0]:
            return 0.0
        return float(np.interp(fraction, self._fractions, self._efficiencies))

    def request_kw(self, site_net_kw: float) -> float:
        """What the battery aims at: the remote setpoint, or locally the site's net import
        (`site_net_kw`: loads - PV, before the battery) turned to zero within its limits."""
        if self.setpoint.value is not None:
            return self.setpoint.value
        return site_net_kw

    def step(self, dt: float, site_net_kw: float) -> BatteryStep:
        spec = self.spec
        hours = dt / 3600.0
        asked = self.request_kw(site_net_kw)
        kw = min(spec.max_discharge_kw, max(-spec.max_charge_kw, asked))
        efficiency = self.inverter_efficiency(kw)
        if efficiency == 0.0:
            kw = 0.0
        low = spec.soc_min_pct / 100.0 * spec.usable_kwh
        high = spec.soc_max_pct / 100.0 * spec.usable_kwh
        # The SoC limits cap the power; the efficiency at the capped power is lower (part
        # load), so the cap is found by a few fixed-point steps, then the energy is held exact.
        if kw > 0:  # discharging: the cells give more than the site gets
            room = max(0.0, self.soc_kwh - low)
            for _ in range(4):
                kw = min(kw, room * self.inverter_efficiency(kw) * self._dc_one_way / hours)
        elif kw < 0:  # charging: the cells get less than the site gives
            room = max(0.0, high - self.soc_kwh)
            for _ in range(4):
                efficiency = self.inverter_efficiency(kw)
                if efficiency > 0:
                    kw = max(kw, -room / (efficiency * self._dc_one_way) / hours)
        efficiency = self.inverter_efficiency(kw)
        if efficiency == 0.0:
            kw = 0.0  # the SoC limit left less than the inverter can run at
        loss = 0.0
        if kw > 0:
            dc_kwh = min(kw * hours / (efficiency * self._dc_one_way), self.soc_kwh - low)
            loss = dc_kwh - kw * hours
            self.soc_kwh -= dc_kwh
        elif kw < 0:
            dc_kwh = min(-kw * hours * efficiency * self._dc_one_way, high - self.soc_kwh)
            loss = -kw * hours - dc_kwh
            self.soc_kwh += dc_kwh
        # Standby (BMS, controls, thermal management) comes from the cells above the reserve;
        # at the reserve the BMS takes it from the site, as a C&I system holds its minimum SoC.
        standby = spec.standby_kw * hours
        from_cells = min(standby, max(0.0, self.soc_kwh - low))
        self.soc_kwh -= from_cells
        kw -= (standby - from_cells) / hours
        loss += standby
        self.power_kw = kw
        if kw > 0:
            self.discharged_kwh += kw * hours
        else:
            self.charged_kwh -= kw * hours
        self.loss_kwh += loss
        curtailed = abs(asked - kw) if self.remote else 0.0
        self.curtailed_kwh += curtailed * hours
        return BatteryStep(ac_kw=kw, loss_kwh=loss, curtailed_kw=curtailed)
