"""`inverter:` as a list (one EndDevice, several inverters) and the optional site meter."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_config
from app.hardware import inverter_settings
from tests.config.test_config import SERVER, write

SITE = (
    SERVER
    + """
inverter:
  - transport: rtu
    serial: {port: /dev/ttyUSB0, baudrate: 19200}
    unit_id: 1
    nameplate: {max_discharge_w: 5000, max_charge_w: 5000}
  - unit_id: 2
    profile: example-hybrid
meter:
  unit_id: 10
"""
)


def test_a_list_of_inverters_shares_the_first_ones_bus(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SITE))
    first, second = config.site()
    assert config.inverter == first
    assert (second.transport, second.serial.port, second.serial.baudrate) == ("rtu", "/dev/ttyUSB0", 19200)
    assert (first.unit_id, second.unit_id) == (1, 2)
    assert second.profile == "example-hybrid" and first.profile == "sunspec"
    assert first.nameplate is not None and second.nameplate is None  # each inverter's own
    assert config.meter is not None and config.meter.unit_id == 10 and config.meter.import_positive
    settings = [inverter_settings(i) for i in config.site()]
    assert settings[0].serial == settings[1].serial


def test_a_single_mapping_stays_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SERVER + "inverter:\n  transport: sim\n"))
    assert config.site() == (config.inverter,)
    assert config.meter is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("unit_id: 2\n    profile", "unit_id: 1\n    profile"),
            "inverter[1].unit_id: got 1, expected one that inverter[0]",
        ),
        (("unit_id: 2\n", "unit_id: 300\n"), "inverter[1].unit_id: got 300, expected a Modbus device id"),
        (("unit_id: 2\n", "unit_id: 2\n    timeout_s: 3\n"), "inverter[1].timeout_s: got 3.0, expected 1.0"),
        (("unit_id: 2\n", "unit_id: 2\n    colour: red\n"), "inverter[1].colour: unknown key"),
        (("  unit_id: 10", "  unit_id: 2"), "meter.unit_id: got 2, expected one no inverter on its bus uses"),
        (("  unit_id: 10", "  unit_id: 10\n  wires: 3"), "meter.wires: unknown key"),
        (("  - unit_id: 2\n    profile: example-hybrid\n", "  - 7\n"), "inverter[1]: expected a mapping"),
    ],
)
def test_errors_name_the_entry(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = SITE.replace(*change)
    assert text != SITE
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        load_config(write(tmp_path, text))


def test_an_empty_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inverter: got an empty list"):
        load_config(write(tmp_path, SERVER + "inverter: []\n"))


def test_the_revert_timer_check_names_the_entry(tmp_path: Path) -> None:
    text = SITE.replace("unit_id: 2\n", "unit_id: 2\n    revert_timeout_s: 30\n")
    with pytest.raises(ConfigError, match=r"inverter\[1\]\.revert_timeout_s: got 30"):
        load_config(write(tmp_path, text))


def test_a_register_table_meter(tmp_path: Path) -> None:
    text = SITE.replace(
        "  unit_id: 10\n", "  unit_id: 10\n  profile: table\n  register: {address: 5600, scale: 0.1}\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.meter is not None and config.meter.register is not None
    assert (config.meter.register.address, config.meter.register.type, config.meter.register.scale) == (
        5600,
        "int32",
        0.1,
    )
    with pytest.raises(ConfigError, match=r"meter\.register: got nothing, expected the register"):
        load_config(write(tmp_path, SITE.replace("  unit_id: 10\n", "  unit_id: 10\n  profile: table\n")))
    with pytest.raises(ConfigError, match=r"meter\.register\.scale: got 0"):
        load_config(write(tmp_path, text.replace("scale: 0.1", "scale: 0")))
