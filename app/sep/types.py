"""Shared 2030.5 primitives: codec markers, integer/hex aliases, base resources, links and units.

Field names follow the schema (sep.xsd, IEEE 2030.5-2018) exactly, so `opModFixedW` in Python is
`<opModFixedW>` on the wire; dataclass field order is schema element order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final, Self

NS: Final = "urn:ieee:std:2030.5:ns"
DEFAULT_POLL_RATE: Final = 900  # seconds; sep.xsd default for every pollRate attribute


@dataclass(frozen=True, slots=True)
class Attr:
    """Marker: the field is an XML attribute, not a child element."""


@dataclass(frozen=True, slots=True)
class Range:
    """Marker: inclusive integer bounds checked when parsing."""

    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class Hex:
    """Marker: an xs:hexBinary bitmap of `size` bytes, held as an int."""

    size: int


@dataclass(frozen=True, slots=True)
class HexStr:
    """Marker: an xs:hexBinary identifier of at most `size` bytes, held as a str (mRID, LFDI)."""

    size: int


@dataclass(frozen=True, slots=True)
class Salvage:
    """Marker on a repeated element: an item that fails to parse is replaced, not fatal to the list.

    `build(fields, problem)` gets the item's attributes and child elements that did parse (by
    name) and what was wrong (e.g. "DERControlBase.opModFixedW: expected ..."); it returns the
    stand-in item, or None to drop the item (the codec then logs it).
    """

    build: Callable[[Mapping[str, Any], str], object | None]


@dataclass(frozen=True, slots=True)
class Ext:
    """Marker: an element of an extension namespace (CSIP-AUS), read in any of `namespaces` and
    written in the first, with `prefix`; its own children stay in the 2030.5 namespace."""

    prefix: str
    namespaces: tuple[str, ...]


#: CSIP-AUS (SA TS 5573) extension namespace, current first (the one we write), then older ones
CSIPAUS_NS: Final = ("https://csipaus.org/ns/v1.3", "https://csipaus.org/ns")
CSIPAUS: Final = Ext("csipaus", CSIPAUS_NS)

ATTR: Final = Attr()
#: `dataclasses.field(metadata=LOCAL)`: a field of the model only, never on the wire.
LOCAL: Final = {"sep.local": True}

UInt8 = Annotated[int, Range(0, 0xFF)]
UInt16 = Annotated[int, Range(0, 0xFFFF)]
UInt32 = Annotated[int, Range(0, 0xFFFF_FFFF)]
UInt40 = Annotated[int, Range(0, 0xFFFF_FFFF_FFFF)]  # sep.xsd gives UInt40 UInt48's maxInclusive
UInt48 = Annotated[int, Range(0, 0xFFFF_FFFF_FFFF)]
Int8 = Annotated[int, Range(-128, 127)]
Int16 = Annotated[int, Range(-32768, 32767)]
Int32 = Annotated[int, Range(-(2**31), 2**31 - 1)]
Int48 = Annotated[int, Range(-(2**47), 2**47)]  # sep.xsd bounds, inclusive on both ends
HexBinary8 = Annotated[int, Hex(1)]
HexBinary16 = Annotated[int, Hex(2)]
HexBinary32 = Annotated[int, Hex(4)]
MRIDType = Annotated[str, HexStr(16)]
HexBinary160 = Annotated[str, HexStr(20)]
# TimeType is Int64 seconds since the epoch on the wire; models hold aware UTC datetimes.
TimeType = datetime
PowerOfTenMultiplierType = Annotated[int, Range(-9, 9)]
PerCent = Annotated[int, Range(0, 10000)]  # hundredths of a percent
SignedPerCent = Annotated[int, Range(-10000, 10000)]  # hundredths of a percent
OneHourRangeType = Annotated[int, Range(-3600, 3600)]  # seconds
VersionType = UInt16
TimeOffsetType = Int32


def percent(hundredths: int) -> float:
    """A PerCent/SignedPerCent wire value (hundredths) as plain percent."""
    return hundredths / 100


def hundredths(pct: float) -> int:
    """Plain percent as a PerCent/SignedPerCent wire value (hundredths), rounded."""
    return round(pct * 100)


def time_to_int(value: datetime) -> int:
    """An aware datetime as TimeType seconds since the epoch; naive datetimes are refused."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: 2030.5 TimeType needs an aware datetime")
    return int(value.timestamp())


def time_from_int(seconds: int) -> datetime:
    """TimeType seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


# --- base resources (sep.xsd "Common" section) -----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """Anything with an optional href (2030.5 Resource)."""

    href: Annotated[str, ATTR] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableResource(Resource):
    """A Resource a client may subscribe to (subscribable 0 = no)."""

    subscribable: Annotated[UInt8, ATTR] = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class List(Resource):
    """Base of every list: `all` items exist on the server, `results` are in this page."""

    all: Annotated[UInt32, ATTR]
    results: Annotated[UInt32, ATTR]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableList(SubscribableResource):
    """A subscribable list (same paging attributes as List)."""

    all: Annotated[UInt32, ATTR]
    results: Annotated[UInt32, ATTR]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifiedObject(Resource):
    """A Resource with an mRID (128-bit hex) and an optional description and version."""

    mRID: MRIDType
    description: str | None = None
    version: VersionType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableIdentifiedObject(SubscribableResource):
    """An IdentifiedObject that is also subscribable."""

    mRID: MRIDType
    description: str | None = None
    version: VersionType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondableResource(Resource):
    """A Resource that asks for Responses at `replyTo` (responseRequired is a HexBinary8 bitmap)."""

    replyTo: Annotated[str, ATTR] | None = None
    responseRequired: Annotated[HexBinary8, ATTR] = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondableSubscribableIdentifiedObject(RespondableResource):
    """Respondable, subscribable and identified: the base of every Event."""

    subscribable: Annotated[UInt8, ATTR] = 0
    mRID: MRIDType
    description: str | None = None
    version: VersionType | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A link to a single resource."""

    href: Annotated[str, ATTR]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListLink(Link):
    """A link to a list; `all` is the server's hint of how many items it holds."""

    all: Annotated[UInt32, ATTR] | None = None


# --- units: {multiplier, value} pairs, value × 10^multiplier ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scaled:
    """A value × 10^multiplier quantity; subclasses fix the unit and the value's integer range."""

    _LO: ClassVar[int] = -32768
    _HI: ClassVar[int] = 32767

    multiplier: PowerOfTenMultiplierType
    value: int

    @property
    def real(self) -> float:
        """The quantity in its plain unit (W, Wh, V, A, VA, var, Ah)."""
        if self.multiplier >= 0:
            return float(self.value * 10**self.multiplier)
        return float(self.value / 10**-self.multiplier)  # divide: keeps 50000 × 10^-3 exactly 50.0

    @classmethod
    def from_real(cls, amount: float) -> Self:
        """Fit a plain-unit amount into the value range with the smallest non-negative multiplier."""
        if cls._LO == 0 and amount < 0:
            raise ValueError(f"{amount} does not fit {cls.__name__} (unsigned)")
        for multiplier in range(0, 10):
            value = round(amount / 10**multiplier)
            if cls._LO <= value <= cls._HI:
                return cls(multiplier=multiplier, value=value)
        raise ValueError(f"{amount} does not fit {cls.__name__} (value range {cls._LO}..{cls._HI})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivePower(_Scaled):
    """Real power in W (value is Int16)."""

    value: Int16

    @property
    def watts(self) -> float:
        """Plain watts."""
        return self.real

    @classmethod
    def from_watts(cls, watts: float) -> ActivePower:
        """Watts with the smallest non-negative multiplier that fits an Int16 value."""
        return cls.from_real(watts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactivePower(_Scaled):
    """Reactive power in var (value is Int16)."""

    value: Int16


@dataclass(frozen=True, slots=True, kw_only=True)
class _UnsignedScaled(_Scaled):
    _LO: ClassVar[int] = 0
    _HI: ClassVar[int] = 65535

    value: UInt16


@dataclass(frozen=True, slots=True, kw_only=True)
class ApparentPower(_UnsignedScaled):
    """Apparent power in VA (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WattHour(_UnsignedScaled):
    """Energy in Wh (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmpereHour(_UnsignedScaled):
    """Charge in Ah (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoltageRMS(_UnsignedScaled):
    """RMS voltage in V (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentRMS(_UnsignedScaled):
    """RMS current in A (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactiveSusceptance(_UnsignedScaled):
    """Reactive susceptance in siemens (value is UInt16)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerFactor:
    """Power factor as displacement × 10^multiplier (displacement is UInt16)."""

    displacement: UInt16
    multiplier: PowerOfTenMultiplierType


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerFactorWithExcitation:
    """Power factor with excitation (true = over-excited)."""

    displacement: UInt16
    excitation: bool
    multiplier: PowerOfTenMultiplierType


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedVar:
    """Fixed reactive power as SignedPerCent of the reference named by refType (DERUnitRefType)."""

    refType: UInt8
    value: SignedPerCent


@dataclass(frozen=True, slots=True, kw_only=True)
class DateTimeInterval:
    """A start time and a duration in seconds."""

    duration: UInt32
    start: TimeType

    @property
    def end(self) -> datetime:
        """start + duration (half-open end)."""
        return self.start + timedelta(seconds=self.duration)
