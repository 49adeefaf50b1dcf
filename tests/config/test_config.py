"""Configuration: the example validates; every bad input names its key, value and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import Config, ConfigError, load_config
from app.hardware import inverter_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gateway.example.yaml"

SERVER = """
server:
  dcap_url: https://127.0.0.1:8443/dcap
  ca_file: ca.pem
  cert_file: client.pem
  key_file: client.key
"""
MINIMAL = SERVER + "inverter:\n  transport: sim\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_validates_and_is_complete() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config, Config)
    assert config.inverter.transport == "rtu"
    assert config.inverter.serial.parity == "N"
    assert config.telemetry.interval_s == 30
    # The example documents every key there is: loading it without any defaults gives the same keys.
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for section in ("server", "inverter", "telemetry", "control", "gpio", "status_page", "ota"):
        fields = set(getattr(config, section).__dataclass_fields__)
        assert fields == set(raw[section]), section


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.server.ca_file == tmp_path / "ca.pem"
    assert config.server.tls.check_hostname is True
    assert config.telemetry.interval_s == 30
    assert config.inverter.transport == "sim"


def test_server_profile_defaults_to_wattsmart_and_takes_csip_aus(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).server.profile == "wattsmart"
    text = (
        SERVER.replace("key_file: client.key", "key_file: client.key\n  profile: csip-aus")
        + MINIMAL[len(SERVER) :]
    )
    assert load_config(write(tmp_path, text)).server.profile == "csip-aus"


def test_relative_profile_file_is_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SERVER + "inverter:\n  transport: tcp\n  profile: vendor.yaml\n"))
    assert config.inverter.profile == str(tmp_path / "vendor.yaml")
    config = load_config(write(tmp_path, SERVER + "inverter:\n  transport: tcp\n  profile: sunspec\n"))
    assert config.inverter.profile == "sunspec"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SERVER + "inverter:\n  transport: usb\n",
            "inverter.transport: got 'usb', expected one of 'rtu', 'tcp', 'sim'",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  port: fast\n",
            "inverter.port: got 'fast', expected a whole number",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  unit_id: 300\n",
            "inverter.unit_id: got 300, expected a Modbus device id between 1 and 247",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  serial:\n    stopbits: 3\n",
            "inverter.serial.stopbits: got 3, expected one of 1, 2",
        ),
        (
            MINIMAL + "telemetry:\n  interval_s: 45\n",
            "telemetry.interval_s: got 45, expected a divisor of 60 s",
        ),
        (MINIMAL + "telemetry:\n  intervall_s: 30\n", "telemetry.intervall_s: unknown key"),
        (
            MINIMAL + "gpio:\n  button_active_low: maybe\n",
            "gpio.button_active_low: got 'maybe', expected true or false",
        ),
        (MINIMAL + "control: 5\n", "control: expected a mapping of keys, got 5"),
        (
            MINIMAL.replace("https://", "http://"),
            "server.dcap_url: got 'http://127.0.0.1:8443/dcap', expected an https:// URL",
        ),
        (MINIMAL.replace("  key_file: client.key\n", ""), "server.key_file: missing (required)"),
        ("inverter: {}\n", "server: missing (required)"),
        (SERVER, "inverter: missing (required)"),
        (SERVER + "inverter:\n  port: 502\n", "inverter.transport: missing (required)"),
        (MINIMAL + "inverter:\n  transport: tcp\n", "duplicate key 'inverter'"),
        (
            MINIMAL + "control:\n  reassert_interval_s: 0\n",
            "control.reassert_interval_s: got 0, expected at least 1",
        ),
        (
            MINIMAL + "control:\n  min_soc_percent: 90\n  max_soc_percent: 80\n",
            "control.min_soc_percent: got 90.0, expected less than max_soc_percent",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  revert_timeout_s: 30\n",
            "inverter.revert_timeout_s: got 30, expected more than control.reassert_interval_s (60)",
        ),
        ("- a\n- b\n", "top level: expected a mapping of keys, got ['a', 'b']"),
        ("server: [unclosed\n", "not valid YAML"),
        (MINIMAL + "state_dir: 12\n", "state_dir: got 12, expected a file or folder path"),
        (SERVER + "inverter:\n  transport: rtu\n  serial:\n    baudrate: 9601\n", "inverter: baudrate 9601"),
        (
            MINIMAL + "control:\n  min_soc_percent: -1\n",
            "control.min_soc_percent: got -1, expected a number ≥ 0",
        ),
        (
            SERVER
            + "inverter:\n  transport: sim\n  nameplate:\n    max_discharge_w: 0\n    max_charge_w: 5000\n",
            "inverter.nameplate.max_discharge_w: got 0.0, expected the battery's power in W, above 0",
        ),
        (
            SERVER
            + "inverter:\n  transport: sim\n  nameplate: {max_discharge_w: 5000, max_charge_w: 5000000000}\n",
            "inverter.nameplate.max_charge_w: got 5000000000.0, expected the battery's power in W, above 0 "
            "and at most 1000000",
        ),
        (
            SERVER
            + "inverter:\n  transport: sim\n  nameplate:\n    max_discharge_w: 5 kW\n    max_charge_w: 1\n",
            "inverter.nameplate.max_discharge_w: got '5 kW', expected a number",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  nameplate:\n    max_discharge_w: 5000\n",
            "inverter.nameplate.max_charge_w: missing (required)",
        ),
        (
            SERVER + "inverter:\n  transport: sim\n  nameplate:\n    max_w: 5000\n",
            "inverter.nameplate.max_w: unknown key",
        ),
        (
            SERVER.replace("key_file: client.key", "key_file: client.key\n  profile: sep2")
            + "inverter:\n  transport: sim\n",
            "server.profile: got 'sep2', expected wattsmart or csip or csip-aus",
        ),
        (
            MINIMAL + "telemetry:\n  ratings_interval_s: 3600\n",
            "telemetry.ratings_interval_s: got 3600, expected 1 to 60 s",
        ),
    ],
)
def test_bad_values_name_key_value_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expected in str(err.value)
    assert str(tmp_path / "gateway.yaml") in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "absent.yaml")


def test_cli_prints_one_line_and_exits_nonzero(tmp_path: Path) -> None:
    path = write(tmp_path, SERVER + "inverter:\n  transport: usb\n")
    result = subprocess.run(
        # `run` stays up on it instead (tests/app/test_not_commissioned.py)
        [sys.executable, "-m", "app", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "inverter.transport" in lines[0] and "'usb'" in lines[0]


def test_rs485_mode_of_the_serial_line(tmp_path: Path) -> None:
    rtu = SERVER + "inverter:\n  transport: rtu\n  serial:\n    port: /dev/ttyAMA0\n"
    assert load_config(write(tmp_path, rtu)).inverter.serial.rs485 is None  # auto-direction, USB
    text = rtu + "    rs485:\n      rts_on_send: false\n      rts_after_send: true\n"
    text += "      delay_after_send_ms: 1\n"
    settings = inverter_settings(load_config(write(tmp_path, text)).inverter)
    assert settings.serial is not None and settings.serial.rs485 is not None
    assert settings.serial.rs485.flags() == 0b101 and settings.serial.rs485.delay_after_send_ms == 1
    with pytest.raises(ConfigError, match="inverter: rts_on_send and rts_after_send must differ"):
        load_config(write(tmp_path, rtu + "    rs485:\n      rts_after_send: true\n"))
