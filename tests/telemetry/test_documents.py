"""Every document the telemetry sends is valid against sep.xsd and says what the utility asked for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from app.sep import parse, to_xml
from app.sep.der import DERCapability, DERSettings
from app.sep.metering_mirror import MirrorMeterReading, MirrorUsagePoint
from app.telemetry.der import der_capability, der_settings, der_status, nameplate
from app.telemetry.metering_mirror import mirror_usage_point, readings_post
from app.telemetry.points import FREQUENCY, POWER, derive_mrid
from hal.inverter import ConnectionStatus, OperatingStatus, Ratings, Telemetry

LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RATINGS = Ratings(max_w=5000, max_charge_w=4600, max_discharge_w=5000, energy_capacity_wh=13500)


def test_mirror_usage_points(assert_valid: Callable[[bytes], None]) -> None:
    for point, uom, power_of_ten in ((POWER, 38, 0), (FREQUENCY, 33, -2)):
        body = to_xml(mirror_usage_point(point, LFDI, data_qualifier=0))
        assert_valid(body)
        mup = parse(MirrorUsagePoint, body)
        assert mup.roleFlags == 0x49  # isMirror | isDER | isSubmeter
        assert (mup.status, mup.serviceCategoryKind, mup.deviceLFDI, mup.postRate) == (1, 0, LFDI, None)
        (mmr,) = mup.MirrorMeterReading
        rt = mmr.ReadingType
        assert rt is not None
        assert (rt.uom, rt.kind, rt.accumulationBehaviour, rt.dataQualifier) == (uom, 37, 12, 0)
        assert (rt.flowDirection, rt.powerOfTenMultiplier) == (1, power_of_ten)
    assert mirror_usage_point(POWER, LFDI, 12).MirrorMeterReading[0].ReadingType.dataQualifier == 12  # type: ignore[union-attr]


def test_mrids_are_stable_per_device_and_point() -> None:
    w = mirror_usage_point(POWER, LFDI, 0).mRID
    assert w == mirror_usage_point(POWER, LFDI.upper(), 0).mRID
    assert w != mirror_usage_point(FREQUENCY, LFDI, 0).mRID
    assert w != mirror_usage_point(POWER, "0" * 40, 0).mRID
    assert len(derive_mrid(LFDI, "x")) == 32


def test_one_reading_and_a_reading_set(assert_valid: Callable[[bytes], None]) -> None:
    tick = int(AT.timestamp())
    single = to_xml(readings_post(FREQUENCY, LFDI, [(tick, 5001, 0)], 30))
    assert_valid(single)
    one = parse(MirrorMeterReading, single)
    assert one.Reading is not None and one.Reading.value == 5001
    assert one.Reading.timePeriod is not None and one.Reading.timePeriod.start == AT
    several = to_xml(
        readings_post(POWER, LFDI, [(tick, -2500, 0), (tick + 30, 0, 0), (tick + 90, 12, 0)], 30)
    )
    assert_valid(several)
    (rs,) = parse(MirrorMeterReading, several).MirrorReadingSet
    assert (rs.timePeriod.start, rs.timePeriod.duration) == (AT, 120)
    assert [(r.timePeriod.start.timestamp() - tick, r.value) for r in rs.Reading if r.timePeriod] == [
        (0, -2500),
        (30, 0),
        (90, 12),
    ]


def test_der_status(assert_valid: Callable[[bytes], None]) -> None:
    sample = Telemetry(AT, 1200.0, 60.01, 57.25, ConnectionStatus.CONNECTED, OperatingStatus.RUNNING)
    status = der_status(sample, AT)
    assert_valid(to_xml(status))
    assert status.readingTime == AT
    assert status.stateOfChargeStatus is not None
    assert (status.stateOfChargeStatus.value, status.stateOfChargeStatus.dateTime) == (5725, AT)
    assert status.genConnectStatus is not None and status.genConnectStatus.value == 0b111
    assert status.inverterStatus is not None and status.inverterStatus.value == 4
    unknown = der_status(Telemetry(AT, None, None, None, None, None), AT)
    assert_valid(to_xml(unknown))
    assert unknown.stateOfChargeStatus is None and unknown.genConnectStatus is None


def test_capability_and_settings(assert_valid: Callable[[bytes], None]) -> None:
    plate = nameplate(RATINGS, None)
    capability = der_capability(plate)
    settings = der_settings(plate, AT, set_grad_w=0)
    assert capability is not None and settings is not None
    assert_valid(to_xml(capability))
    assert_valid(to_xml(settings))
    cap = parse(DERCapability, to_xml(capability))
    assert cap.type == 80 and cap.modesSupported == 0x0050008F
    assert cap.rtgMaxW.watts == 5000 and cap.rtgMaxWh is not None and cap.rtgMaxWh.real == 13500
    assert cap.rtgMaxChargeRateW is not None and cap.rtgMaxChargeRateW.watts == 4600
    got = parse(DERSettings, to_xml(settings))
    assert (got.setMaxW.watts, got.setGradW, got.updatedTime) == (5000, 0, AT)
    assert got.setMaxWh is not None and got.setMaxDischargeRateW is not None


def test_override_fills_only_what_the_inverter_cannot_report() -> None:
    partial = Ratings(max_w=5000, max_charge_w=None, max_discharge_w=4000, energy_capacity_wh=None)
    overrides = Ratings(max_w=9999, max_charge_w=3000, max_discharge_w=9999, energy_capacity_wh=10000)
    plate = nameplate(partial, overrides)
    assert (plate.max_w, plate.max_charge_w, plate.max_discharge_w, plate.max_wh) == (5000, 3000, 4000, 10000)
    assert der_capability(nameplate(Ratings(None, None, None, None), None)) is None
