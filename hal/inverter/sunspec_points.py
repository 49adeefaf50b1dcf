"""The SunSpec points this project uses: offsets from the model's ID register, types, scale factors.

Taken from the SunSpec information model (sunspec/models JSON, as shipped in pysunspec2 1.3.7);
the test suite cross-checks this table against pysunspec2's own model definitions. Only the points
the gateway reads or writes are listed; `LENGTHS` gives each model's L (registers after the header).
"""

from __future__ import annotations

from dataclasses import dataclass

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL_ID = 0xFFFF
BASE_ADDRESSES = (40000, 0, 50000)

LENGTHS: dict[int, int] = {
    1: 66,
    103: 50,
    120: 26,
    121: 30,
    124: 24,
    701: 153,
    702: 50,
    704: 65,
    713: 7,
    802: 62,
    # the meter models (single phase, split phase, wye, delta): the same layout up to W_SF
    201: 105,
    202: 105,
    203: 105,
    204: 105,
}


@dataclass(frozen=True)
class Point:
    """One SunSpec point: offset from the model start, type, and the name of its scale-factor point."""

    offset: int
    kind: str
    sf: str | None = None


POINTS: dict[int, dict[str, Point]] = {
    1: {"Mn": Point(2, "string16"), "Md": Point(18, "string16"), "SN": Point(50, "string16")},
    701: {
        "St": Point(3, "enum16"),
        "InvSt": Point(4, "enum16"),
        "ConnSt": Point(5, "enum16"),
        "W": Point(10, "int16", "W_SF"),
        "Hz": Point(17, "uint32", "Hz_SF"),
        "Hz_SF": Point(115, "sunssf"),
        "W_SF": Point(116, "sunssf"),
    },
    702: {
        "WMaxRtg": Point(2, "uint16", "W_SF"),
        "WChaRteMaxRtg": Point(10, "uint16", "W_SF"),
        "WDisChaRteMaxRtg": Point(11, "uint16", "W_SF"),
        "WMax": Point(26, "uint16", "W_SF"),
        "WChaRteMax": Point(34, "uint16", "W_SF"),
        "WDisChaRteMax": Point(35, "uint16", "W_SF"),
        "W_SF": Point(45, "sunssf"),
    },
    704: {
        "WMaxLimPctEna": Point(14, "enum16"),
        "WMaxLimPct": Point(15, "uint16", "WMaxLimPct_SF"),
        "WMaxLimPctRvrt": Point(16, "uint16", "WMaxLimPct_SF"),
        "WMaxLimPctEnaRvrt": Point(17, "enum16"),
        "WMaxLimPctRvrtTms": Point(18, "uint32"),
        "WMaxLimPctRvrtRem": Point(20, "uint32"),
        "WSetEna": Point(22, "enum16"),
        "WSetMod": Point(23, "enum16"),
        "WSet": Point(24, "int32", "WSet_SF"),
        "WSetRvrt": Point(26, "int32", "WSet_SF"),
        "WSetPct": Point(28, "int16", "WSetPct_SF"),
        "WSetPctRvrt": Point(29, "int16", "WSetPct_SF"),
        "WSetEnaRvrt": Point(30, "enum16"),
        "WSetRvrtTms": Point(31, "uint32"),
        "WSetRvrtRem": Point(33, "uint32"),
        "WRmp": Point(49, "uint16"),
        "WMaxLimPct_SF": Point(54, "sunssf"),
        "WSet_SF": Point(55, "sunssf"),
        "WSetPct_SF": Point(56, "sunssf"),
    },
    713: {
        "WHRtg": Point(2, "uint16", "WH_SF"),
        "WHAvail": Point(3, "uint16", "WH_SF"),
        "SoC": Point(4, "uint16", "Pct_SF"),
        "Sta": Point(6, "enum16"),
        "WH_SF": Point(7, "sunssf"),
        "Pct_SF": Point(8, "sunssf"),
    },
    802: {
        "WHRtg": Point(3, "uint16", "WHRtg_SF"),
        "WChaRteMax": Point(4, "uint16", "WChaDisChaMax_SF"),
        "WDisChaRteMax": Point(5, "uint16", "WChaDisChaMax_SF"),
        "SoC": Point(11, "uint16", "SoC_SF"),
        "WHRtg_SF": Point(53, "sunssf"),
        "WChaDisChaMax_SF": Point(54, "sunssf"),
        "SoC_SF": Point(56, "sunssf"),
    },
    103: {
        "W": Point(14, "int16", "W_SF"),
        "W_SF": Point(15, "sunssf"),
        "Hz": Point(16, "uint16", "Hz_SF"),
        "Hz_SF": Point(17, "sunssf"),
        "St": Point(38, "enum16"),
    },
    120: {
        "DERTyp": Point(2, "enum16"),
        "WRtg": Point(3, "uint16", "WRtg_SF"),
        "WRtg_SF": Point(4, "sunssf"),
        "WHRtg": Point(19, "uint16", "WHRtg_SF"),
        "WHRtg_SF": Point(20, "sunssf"),
        "MaxChaRte": Point(23, "uint16", "MaxChaRte_SF"),
        "MaxChaRte_SF": Point(24, "sunssf"),
        "MaxDisChaRte": Point(25, "uint16", "MaxDisChaRte_SF"),
        "MaxDisChaRte_SF": Point(26, "sunssf"),
    },
    121: {"WMax": Point(2, "uint16", "WMax_SF"), "WMax_SF": Point(22, "sunssf")},
    124: {
        "WChaMax": Point(2, "uint16", "WChaMax_SF"),
        "StorCtl_Mod": Point(5, "bitfield16"),
        "ChaState": Point(8, "uint16", "ChaState_SF"),
        "ChaSt": Point(11, "enum16"),
        "OutWRte": Point(12, "int16", "InOutWRte_SF"),
        "InWRte": Point(13, "int16", "InOutWRte_SF"),
        "InOutWRte_RvrtTms": Point(15, "uint16"),
        "WChaMax_SF": Point(18, "sunssf"),
        "ChaState_SF": Point(22, "sunssf"),
        "InOutWRte_SF": Point(25, "sunssf"),
    },
}

METER_MODELS = (201, 202, 203, 204)
_METER_POINTS = {
    "Hz": Point(16, "int16", "Hz_SF"),
    "Hz_SF": Point(17, "sunssf"),
    "W": Point(18, "int16", "W_SF"),
    "W_SF": Point(22, "sunssf"),
}
POINTS.update(dict.fromkeys(METER_MODELS, _METER_POINTS))

# 103.St (legacy inverter state) values that map onto the 701.InvSt meaning.
LEGACY_ST_TO_INVST: dict[int, int] = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7}


def point(model_id: int, name: str) -> Point:
    """Look up a point of a model."""
    return POINTS[model_id][name]
