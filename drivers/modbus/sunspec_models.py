"""SunSpec information models as Modbus registers: the layouts of the models edgecell knows
(1 common, 103 three-phase inverter, 124 basic storage), their types' "not implemented" values,
and the marker and end model that frame a SunSpec device's map.

The layouts are the SunSpec Alliance's model definitions (models/json/model_<id>.json of
sunspec/models, as shipped in pysunspec2 1.3.7): `offset` counts from the model's ID register,
as SunSpec does. The simulated devices (drivers/sim/sunspec_server.py) serve them and
`edgecell browse` turns them into tags; tests/drivers/sim/test_sunspec_server.py checks both
against the Alliance's own client.
"""

from __future__ import annotations

from dataclasses import dataclass

# "SunS" as two registers, at the base address (40000, else 0 or 50000).
SUNS_MARKER = (0x5375, 0x6E53)
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF

# What a register holds when the device does not implement the point (SunSpec Information
# Model Specification, "Unimplemented registers").
NOT_IMPLEMENTED: dict[str, int] = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "sunssf": 0x8000,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "count": 0,
    "acc16": 0,
    "pad": 0x8000,
}
# Scale factors are exponents of ten, -10..10 (SunSpec Information Model Specification).
SF_RANGE = (-10, 10)


@dataclass(frozen=True)
class SunSpecPoint:
    name: str
    offset: int  # registers from the model's ID register
    type: str  # SunSpec type: uint16, int16, acc32, sunssf, enum16, bitfield16/32, string, pad
    size: int  # registers
    sf: str | None  # the name of the scale-factor point in the same model
    units: str
    writable: bool
    label: str


@dataclass(frozen=True)
class SunSpecModel:
    id: int
    name: str
    label: str
    length: int  # L: registers after the ID and L registers
    points: tuple[SunSpecPoint, ...]

    def point(self, name: str) -> SunSpecPoint:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(f"model {self.id} has no point {name!r}")


P = SunSpecPoint

COMMON = SunSpecModel(
    1,
    "common",
    "Common",
    66,
    (
        P("Mn", 2, "string", 16, None, "", False, "Manufacturer"),
        P("Md", 18, "string", 16, None, "", False, "Model"),
        P("Opt", 34, "string", 8, None, "", False, "Options"),
        P("Vr", 42, "string", 8, None, "", False, "Version"),
        P("SN", 50, "string", 16, None, "", False, "Serial Number"),
        P("DA", 66, "uint16", 1, None, "", True, "Device Address"),
        P("Pad", 67, "pad", 1, None, "", False, ""),
    ),
)
INVERTER_THREE_PHASE = SunSpecModel(
    103,
    "inverter_three_phase",
    "Inverter (Three Phase)",
    50,
    (
        P("A", 2, "uint16", 1, "A_SF", "A", False, "Amps"),
        P("AphA", 3, "uint16", 1, "A_SF", "A", False, "Amps PhaseA"),
        P("AphB", 4, "uint16", 1, "A_SF", "A", False, "Amps PhaseB"),
        P("AphC", 5, "uint16", 1, "A_SF", "A", False, "Amps PhaseC"),
        P("A_SF", 6, "sunssf", 1, None, "", False, ""),
        P("PPVphAB", 7, "uint16", 1, "V_SF", "V", False, "Phase Voltage AB"),
        P("PPVphBC", 8, "uint16", 1, "V_SF", "V", False, "Phase Voltage BC"),
        P("PPVphCA", 9, "uint16", 1, "V_SF", "V", False, "Phase Voltage CA"),
        P("PhVphA", 10, "uint16", 1, "V_SF", "V", False, "Phase Voltage AN"),
        P("PhVphB", 11, "uint16", 1, "V_SF", "V", False, "Phase Voltage BN"),
        P("PhVphC", 12, "uint16", 1, "V_SF", "V", False, "Phase Voltage CN"),
        P("V_SF", 13, "sunssf", 1, None, "", False, ""),
        P("W", 14, "int16", 1, "W_SF", "W", False, "Watts"),
        P("W_SF", 15, "sunssf", 1, None, "", False, ""),
        P("Hz", 16, "uint16", 1, "Hz_SF", "Hz", False, "Hz"),
        P("Hz_SF", 17, "sunssf", 1, None, "", False, ""),
        P("VA", 18, "int16", 1, "VA_SF", "VA", False, "VA"),
        P("VA_SF", 19, "sunssf", 1, None, "", False, ""),
        P("VAr", 20, "int16", 1, "VAr_SF", "var", False, "VAr"),
        P("VAr_SF", 21, "sunssf", 1, None, "", False, ""),
        P("PF", 22, "int16", 1, "PF_SF", "Pct", False, "PF"),
        P("PF_SF", 23, "sunssf", 1, None, "", False, ""),
        P("WH", 24, "acc32", 2, "WH_SF", "Wh", False, "WattHours"),
        P("WH_SF", 26, "sunssf", 1, None, "", False, ""),
        P("DCA", 27, "uint16", 1, "DCA_SF", "A", False, "DC Amps"),
        P("DCA_SF", 28, "sunssf", 1, None, "", False, ""),
        P("DCV", 29, "uint16", 1, "DCV_SF", "V", False, "DC Voltage"),
        P("DCV_SF", 30, "sunssf", 1, None, "", False, ""),
        P("DCW", 31, "int16", 1, "DCW_SF", "W", False, "DC Watts"),
        P("DCW_SF", 32, "sunssf", 1, None, "", False, ""),
        P("TmpCab", 33, "int16", 1, "Tmp_SF", "C", False, "Cabinet Temperature"),
        P("TmpSnk", 34, "int16", 1, "Tmp_SF", "C", False, "Heat Sink Temperature"),
        P("TmpTrns", 35, "int16", 1, "Tmp_SF", "C", False, "Transformer Temperature"),
        P("TmpOt", 36, "int16", 1, "Tmp_SF", "C", False, "Other Temperature"),
        P("Tmp_SF", 37, "sunssf", 1, None, "", False, ""),
        P("St", 38, "enum16", 1, None, "", False, "Operating State"),
        P("StVnd", 39, "enum16", 1, None, "", False, "Vendor Operating State"),
        P("Evt1", 40, "bitfield32", 2, None, "", False, "Event1"),
        P("Evt2", 42, "bitfield32", 2, None, "", False, "Event Bitfield 2"),
        P("EvtVnd1", 44, "bitfield32", 2, None, "", False, "Vendor Event Bitfield 1"),
        P("EvtVnd2", 46, "bitfield32", 2, None, "", False, "Vendor Event Bitfield 2"),
        P("EvtVnd3", 48, "bitfield32", 2, None, "", False, "Vendor Event Bitfield 3"),
        P("EvtVnd4", 50, "bitfield32", 2, None, "", False, "Vendor Event Bitfield 4"),
    ),
)
STORAGE_BASIC = SunSpecModel(
    124,
    "storage_basic",
    "Storage (basic controls)",
    24,
    (
        P("WChaMax", 2, "uint16", 1, "WChaMax_SF", "W", True, "WChaMax"),
        P("WChaGra", 3, "uint16", 1, "WChaDisChaGra_SF", "% WChaMax/sec", True, "WChaGra"),
        P("WDisChaGra", 4, "uint16", 1, "WChaDisChaGra_SF", "% WChaMax/sec", True, "WDisChaGra"),
        P("StorCtl_Mod", 5, "bitfield16", 1, None, "", True, "StorCtl_Mod"),
        P("VAChaMax", 6, "uint16", 1, "VAChaMax_SF", "VA", True, "VAChaMax"),
        P("MinRsvPct", 7, "uint16", 1, "MinRsvPct_SF", "% WChaMax", True, "MinRsvPct"),
        P("ChaState", 8, "uint16", 1, "ChaState_SF", "% AhrRtg", False, "ChaState"),
        P("StorAval", 9, "uint16", 1, "StorAval_SF", "AH", False, "StorAval"),
        P("InBatV", 10, "uint16", 1, "InBatV_SF", "V", False, "InBatV"),
        P("ChaSt", 11, "enum16", 1, None, "", False, "ChaSt"),
        P("OutWRte", 12, "int16", 1, "InOutWRte_SF", "% WDisChaMax", True, "OutWRte"),
        P("InWRte", 13, "int16", 1, "InOutWRte_SF", " % WChaMax", True, "InWRte"),
        P("InOutWRte_WinTms", 14, "uint16", 1, None, "Secs", True, "InOutWRte_WinTms"),
        P("InOutWRte_RvrtTms", 15, "uint16", 1, None, "Secs", True, "InOutWRte_RvrtTms"),
        P("InOutWRte_RmpTms", 16, "uint16", 1, None, "Secs", True, "InOutWRte_RmpTms"),
        P("ChaGriSet", 17, "enum16", 1, None, "", True, ""),
        P("WChaMax_SF", 18, "sunssf", 1, None, "", False, "WChaMax_SF"),
        P("WChaDisChaGra_SF", 19, "sunssf", 1, None, "", False, "WChaDisChaGra_SF"),
        P("VAChaMax_SF", 20, "sunssf", 1, None, "", False, "VAChaMax_SF"),
        P("MinRsvPct_SF", 21, "sunssf", 1, None, "", False, "MinRsvPct_SF"),
        P("ChaState_SF", 22, "sunssf", 1, None, "", False, "ChaState_SF"),
        P("StorAval_SF", 23, "sunssf", 1, None, "", False, "StorAval_SF"),
        P("InBatV_SF", 24, "sunssf", 1, None, "", False, "InBatV_SF"),
        P("InOutWRte_SF", 25, "sunssf", 1, None, "", False, "InOutWRte_SF"),
    ),
)

MODELS: dict[int, SunSpecModel] = {m.id: m for m in (COMMON, INVERTER_THREE_PHASE, STORAGE_BASIC)}
