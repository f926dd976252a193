"""The simulated PV inverter and battery as SunSpec devices over Modbus TCP.

One unit per device: the `SunS` marker at the base address, model 1 (common), model 103 (the
inverter's AC side), for the battery model 124 (basic storage controls), the end model. Values
carry their models' scale factors (fixed per device, as most inverters keep them); a client's
write of the battery's rate (124 `OutWRte` / `InWRte`) becomes the plant's battery setpoint.
Served by the same SimModbusServer as the other devices (drivers/sim/modbus_server.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.config import Table
from drivers.modbus.sunspec_models import (
    COMMON,
    END_MODEL_ID,
    INVERTER_THREE_PHASE,
    NOT_IMPLEMENTED,
    STORAGE_BASIC,
    SUNS_MARKER,
    SunSpecModel,
    SunSpecPoint,
)
from drivers.sim.modbus_server import Span
from drivers.sim.points import PointSource
from drivers.sim.scenario import SunSpecDeviceSpec

log = structlog.get_logger(__name__)

# A point's engineering value now (None: not implemented on this device).
Reader = Callable[[], float | str | None]

# Scale factors the simulated devices use: fine enough for a few-hundred-kW site, inside int16.
SCALE_FACTORS: dict[str, int] = {
    "A_SF": -1,
    "V_SF": -1,
    "W_SF": 1,  # 10 W steps: int16 reaches 327 kW
    "Hz_SF": -2,
    "VA_SF": 1,
    "VAr_SF": 1,
    "PF_SF": -1,
    "WH_SF": 0,
    "DCA_SF": -1,
    "DCV_SF": -1,
    "DCW_SF": 1,
    "Tmp_SF": -1,
    "WChaMax_SF": 1,
    "WChaDisChaGra_SF": 0,
    "MinRsvPct_SF": -1,
    "ChaState_SF": -1,
    "InOutWRte_SF": -1,
}
# The PV inverter's DC bus at its MPP (a typical C&I string voltage); DC amps follow from it.
PV_DC_VOLTS = 620.0
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-32767, 32767),
    "uint16": (0, 65534),
    "acc32": (0, 2**32 - 1),
    "enum16": (0, 65534),
    "bitfield16": (0, 0x7FFF),
    "bitfield32": (0, 0x7FFFFFFF),
}
_WRITES = (6, 16, 23)


class SunSpecError(Exception):
    """A SunSpec device the plant cannot back."""


def _number(plant: PointSource, name: str) -> float:
    return float(plant.read_point(name))


def _encode(point: SunSpecPoint, value: float | str | None) -> list[int]:
    """One point's registers; None gives the type's 'not implemented' value."""
    if point.type == "string":
        text = (value if isinstance(value, str) else "").encode("ascii", "replace")
        data = text[: point.size * 2].ljust(point.size * 2, b"\0")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if value is None or isinstance(value, str):
        if point.type in ("acc32", "bitfield32", "uint32"):
            return [0xFFFF, 0xFFFF] if point.type != "acc32" else [0, 0]
        return [NOT_IMPLEMENTED[point.type]]
    if point.type == "sunssf":
        return [int(value) & 0xFFFF]
    if point.type == "pad":
        return [0x8000]
    raw = value if point.sf is None else value / 10.0 ** SCALE_FACTORS[point.sf]
    low, high = _INT_RANGES[point.type]
    number = min(high, max(low, round(raw))) if math.isfinite(raw) else NOT_IMPLEMENTED["int16"]
    if point.size == 2:
        return [(number >> 16) & 0xFFFF, number & 0xFFFF]
    return [number & 0xFFFF]


class SunSpecUnit:
    """One SunSpec device over a plant: its register image and the writes it accepts."""

    def __init__(self, plant: PointSource, spec: SunSpecDeviceSpec) -> None:
        self.plant = plant
        self.spec = spec
        known = set(plant.point_names())
        needed = "pv.power_kw" if spec.equipment == "pv" else "battery.soc_pct"
        if needed not in known:
            raise SunSpecError(f"device {spec.name}: the plant has no {spec.equipment}")
        readers = self._readers()
        self.models: list[tuple[int, SunSpecModel]] = []  # (address of the ID register, model)
        address = spec.base_address + len(SUNS_MARKER)
        models = [COMMON, INVERTER_THREE_PHASE]
        if spec.equipment == "battery":
            models.append(STORAGE_BASIC)
        for model in models:
            self.models.append((address, model))
            address += 2 + model.length
        self.end_address = address
        self._readers_by_model = readers
        self.spans = {Table.HOLDING: Span(spec.base_address, address + 2 - spec.base_address)}

    # --- values ---------------------------------------------------------------------------------

    def _readers(self) -> dict[int, dict[str, Reader]]:
        spec, plant = self.spec, self.plant
        number = functools.partial(_number, plant)
        model = spec.model or ("PV inverter" if spec.equipment == "pv" else "Battery inverter")
        common: dict[str, Reader] = {
            "Mn": lambda: spec.manufacturer,
            "Md": lambda: model,
            "Opt": lambda: spec.resembles[:16],
            "Vr": lambda: "1.0",
            "SN": lambda: spec.serial,
            "DA": lambda: float(spec.unit_id),
            "Pad": lambda: 0.0,
        }
        if spec.equipment == "pv":
            power = functools.partial(number, "pv.power_kw")
            dc = functools.partial(number, "pv.dc_power_kw")
            energy = functools.partial(number, "pv.energy_kwh")
        else:
            power = functools.partial(number, "battery.power_kw")
            dc = power
            energy = functools.partial(number, "battery.discharged_kwh")

        def volts(n: int) -> float:
            return number(f"site_meter.voltage_l{n}_v")

        def phase_amps(n: int) -> float:
            return abs(power()) * 1000.0 / 3.0 / volts(n)

        def line_volts(a: int, b: int) -> float:
            return (volts(a) + volts(b)) / 2.0 * math.sqrt(3.0)

        def state() -> float:
            if spec.equipment == "pv":
                return 4.0 if power() > 0 else 2.0  # MPPT, SLEEPING
            return 4.0 if power() != 0 else 8.0  # operating (4, as vendors use it), STANDBY

        inverter: dict[str, Reader] = {
            "A": lambda: sum(phase_amps(n) for n in (1, 2, 3)),
            "AphA": functools.partial(phase_amps, 1),
            "AphB": functools.partial(phase_amps, 2),
            "AphC": functools.partial(phase_amps, 3),
            "PPVphAB": functools.partial(line_volts, 1, 2),
            "PPVphBC": functools.partial(line_volts, 2, 3),
            "PPVphCA": functools.partial(line_volts, 3, 1),
            "PhVphA": functools.partial(volts, 1),
            "PhVphB": functools.partial(volts, 2),
            "PhVphC": functools.partial(volts, 3),
            "W": lambda: power() * 1000.0,
            "Hz": functools.partial(number, "site_meter.frequency_hz"),
            "VA": lambda: abs(power()) * 1000.0,
            "VAr": lambda: 0.0,
            "PF": lambda: 100.0,  # unity power factor, in percent
            "WH": lambda: energy() * 1000.0,
            "DCW": lambda: dc() * 1000.0,
            "TmpCab": functools.partial(number, "ambient.dry_bulb_c"),
            "St": state,
            "Evt1": lambda: 0.0,
            "Evt2": lambda: 0.0,
        }
        if spec.equipment == "pv":
            inverter["DCV"] = lambda: PV_DC_VOLTS if dc() > 0 else 0.0
            inverter["DCA"] = lambda: dc() * 1000.0 / PV_DC_VOLTS
        readers = {1: common, 103: inverter}
        if spec.equipment == "battery":
            readers[124] = self._storage_readers(number)
        for sf_name, exponent in SCALE_FACTORS.items():
            for table in readers.values():
                table.setdefault(sf_name, functools.partial(float, exponent))
        return readers

    def _storage_readers(self, number: Callable[[str], float]) -> dict[str, Reader]:
        def following() -> bool:
            return bool(self.plant.read_point("battery.following_setpoint"))

        def out_rate() -> float:
            """The setpoint as OutWRte: % of the discharge limit; negative, of the charge limit."""
            if not following():
                return 0.0
            kw = number("battery.setpoint_kw")
            limit = number("battery.max_discharge_kw" if kw >= 0 else "battery.max_charge_kw")
            return 100.0 * kw / limit

        def charge_state() -> float:
            kw, soc = number("battery.power_kw"), number("battery.soc_pct")
            if kw > 0:
                return 3.0  # DISCHARGING
            if kw < -1e-9 and soc < number("battery.soc_max_pct") - 1e-6:
                return 4.0  # CHARGING
            if soc >= number("battery.soc_max_pct") - 1e-6:
                return 5.0  # FULL
            if soc <= number("battery.soc_min_pct") + 1e-6:
                return 2.0  # EMPTY
            return 6.0  # HOLDING

        return {
            "WChaMax": lambda: number("battery.max_charge_kw") * 1000.0,
            "WChaGra": lambda: 100.0,  # full power within a second
            "WDisChaGra": lambda: 100.0,
            "StorCtl_Mod": lambda: 3.0 if following() else 0.0,  # CHARGE | DISCHARGE bits
            "MinRsvPct": functools.partial(number, "battery.soc_min_pct"),
            "ChaState": functools.partial(number, "battery.soc_pct"),
            "ChaSt": charge_state,
            "OutWRte": out_rate,
            "InWRte": lambda: -out_rate(),
            "InOutWRte_WinTms": lambda: 0.0,
            "InOutWRte_RvrtTms": functools.partial(number, "battery.watchdog_s"),
            "InOutWRte_RmpTms": lambda: 0.0,
            "ChaGriSet": lambda: 1.0,  # GRID: it may charge from the grid
        }

    def images(self) -> dict[Table, list[int]]:
        image = [*SUNS_MARKER]
        for _, model in self.models:
            image += [model.id, model.length]
            readers = self._readers_by_model[model.id]
            for point in model.points:
                reader = readers.get(point.name)
                image += _encode(point, reader() if reader is not None else None)
        image += [END_MODEL_ID, 0]
        return {Table.HOLDING: image}

    def simdevice(self) -> SimDevice:
        span = self.spans[Table.HOLDING]
        bits = [SimData(0, values=[False] * 16, datatype=SimType.BITS)]
        return SimDevice(
            id=self.spec.unit_id,
            simdata=(
                bits,
                [SimData(0, values=[False] * 16, datatype=SimType.BITS)],
                [SimData(span.first, values=[0] * span.count, datatype=SimType.REGISTERS)],
                [SimData(0, datatype=SimType.INVALID)],
            ),
            action=functools.partial(_on_access, self),
        )

    # --- writes ---------------------------------------------------------------------------------

    def _point_at(self, address: int) -> tuple[SunSpecModel, SunSpecPoint] | None:
        for start, model in self.models:
            for point in model.points:
                if start + point.offset <= address < start + point.offset + point.size:
                    return model, point
        return None

    def apply_write(self, address: int, values: Sequence[int]) -> ExcCodes | None:
        """A client writes `values` from `address`. Only the battery's rate (124 OutWRte,
        InWRte) and StorCtl_Mod take writes here; anything else is refused, the whole write."""
        writes: list[tuple[str, int]] = []
        for i, raw in enumerate(values):
            found = self._point_at(address + i)
            if found is None or found[0].id != 124:
                return ExcCodes.ILLEGAL_ADDRESS
            name = found[1].name
            if name not in ("OutWRte", "InWRte", "StorCtl_Mod"):
                return ExcCodes.ILLEGAL_ADDRESS
            writes.append((name, int(raw)))
        for name, raw in writes:
            if name == "StorCtl_Mod":
                if raw > 3:
                    return ExcCodes.ILLEGAL_VALUE
                continue  # the rate written next decides; 0 is what the watchdog gives back
            signed = raw - 0x10000 if raw >= 0x8000 else raw
            percent = signed * 10.0 ** SCALE_FACTORS["InOutWRte_SF"]
            if signed == -0x8000 or not -100.0 <= percent <= 100.0:
                return ExcCodes.ILLEGAL_VALUE
            discharge = percent if name == "OutWRte" else -percent
            limit = "battery.max_discharge_kw" if discharge >= 0 else "battery.max_charge_kw"
            kw = discharge / 100.0 * _number(self.plant, limit)
            try:
                self.plant.write_point("battery.setpoint_kw", kw)
            except (TypeError, ValueError) as exc:
                log.info("sim_write_refused", device=self.spec.name, point=name, reason=str(exc))
                return ExcCodes.ILLEGAL_VALUE
            log.debug("sunspec_rate_written", device=self.spec.name, point=name, kw=kw)
        return None


async def _on_access(  # noqa: PLR0917  (pymodbus's SimAction signature)
    unit: SunSpecUnit,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    del start_address, count, registers
    if function_code == 22:
        return ExcCodes.ILLEGAL_FUNCTION  # mask write: rates are written whole
    if set_values is None or function_code not in _WRITES:
        return None  # reads, and the refresh laying the plant's values in
    return unit.apply_write(address, [int(v) for v in set_values])
