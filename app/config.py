"""Typed configuration: one YAML file, validated once at start-up into frozen objects.

Every error names the key path, the bad value and what was expected, so an installer can fix
the file from the one line the gateway prints.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import yaml

from app.invalid import Invalid as _Invalid
from app.ota.settings import OtaSettings
from hal.inverter.settings import MAX_NAMEPLATE_W

T = TypeVar("T")


#: where the gateway's configuration lives on a box
DEFAULT_CONFIG = Path("/etc/wattsmart-gateway/gateway.yaml")


class ConfigError(Exception):
    """The configuration is unusable; the message names the key, the value and what was expected."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for the link to the 2030.5 server."""

    #: offer only TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, the suite 2030.5 mandates
    ccm8_only: bool = False
    #: 2030.5 device PKIs often issue server certificates without a hostname; switch off only then
    check_hostname: bool = True


#: `server.profile` values
PROFILES: Final = ("wattsmart", "csip", "csip-aus")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The utility's 2030.5 server and our credentials for it."""

    dcap_url: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    tls: TlsOptions = field(default_factory=TlsOptions)
    #: a whole request (connect, send, read the body) must finish within this many seconds
    request_timeout_s: float = 20.0
    #: response bodies over this size are refused unread
    max_body_bytes: int = 1_048_576
    #: pollRate to use when neither a resource nor its parents carry one (2030.5 default)
    default_poll_rate_s: int = 900
    #: longest wait between retries after failures
    max_backoff_s: float = 300.0
    #: a server pollRate/postRate below this is raised to it (pollRate 0 must not make us a load test)
    min_rate_s: int = 10
    #: a server pollRate/postRate above this is capped to it (4294967295 must not freeze a list)
    max_rate_s: int = 86400
    #: a server clock further than this from ours is still followed, but warned about
    max_clock_offset_s: float = 300.0
    #: DERControlResponses posted per second at most (a list of thousands must not flood the server)
    responses_per_s: float = 4.0
    #: the utility's 2030.5 profile: what DERCapability/DERSettings say beyond the core (csip-aus:
    #: the csipaus:doeModesSupported its servers require, and doeModesEnabled); controls, the
    #: csipaus limits included, are read the same under each (app/control/README.md)
    profile: str = "wattsmart"

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise _Invalid("profile", self.profile, " or ".join(PROFILES))
        if not self.dcap_url.startswith("https://"):
            raise _Invalid("dcap_url", self.dcap_url, "an https:// URL (2030.5 requires TLS)")
        if self.min_rate_s < 1:
            raise _Invalid("min_rate_s", self.min_rate_s, "at least 1 second")
        if self.max_rate_s < self.min_rate_s:
            raise _Invalid("max_rate_s", self.max_rate_s, f"at least min_rate_s ({self.min_rate_s})")
        if self.responses_per_s <= 0:
            raise _Invalid("responses_per_s", self.responses_per_s, "more than 0")


@dataclass(frozen=True, slots=True)
class Rs485Config:
    """Kernel RS-485 mode: the UART drives the transceiver's direction by RTS (delays in ms)."""

    rts_on_send: bool = True
    rts_after_send: bool = False
    delay_before_send_ms: int = 0
    delay_after_send_ms: int = 0
    rx_during_tx: bool = False


@dataclass(frozen=True, slots=True)
class SerialPort:
    """An RS-485 serial line."""

    port: str = "/dev/ttyAMA0"
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    #: absent for auto-direction transceivers and USB adapters; set when RTS drives DE/RE
    rs485: Rs485Config | None = None


@dataclass(frozen=True, slots=True)
class NameplateConfig:
    """The battery's nameplate, from its label or datasheet: the hard ceiling of every setpoint."""

    #: largest discharge (export) power, W
    max_discharge_w: float = field(default=0.0, metadata={"required": True})
    #: largest charge (import) power, W
    max_charge_w: float = field(default=0.0, metadata={"required": True})

    def __post_init__(self) -> None:
        for key in ("max_discharge_w", "max_charge_w"):
            value = getattr(self, key)
            if not 0 < value <= MAX_NAMEPLATE_W:
                raise _Invalid(
                    key, value, f"the battery's power in W, above 0 and at most {MAX_NAMEPLATE_W:.0f}"
                )


@dataclass(frozen=True, slots=True)
class InverterConfig:
    """The battery inverter and how to reach it."""

    #: required in the file: a forgotten section must not drive a simulated battery in the field
    transport: Literal["rtu", "tcp", "sim"] = field(default="sim", metadata={"required": True})
    serial: SerialPort = field(default_factory=SerialPort)
    host: str = "127.0.0.1"
    port: int = 502
    unit_id: int = 1
    #: "sunspec", or the path of a register-table profile (YAML)
    profile: str = "sunspec"
    timeout_s: float = 1.0
    retries: int = 2
    #: SunSpec 704 revert timer: the inverter drops our setpoint by itself if we stop refreshing it
    revert_timeout_s: int = 300
    #: the ceiling no setpoint exceeds, whatever the inverter reports; without it, an inverter whose
    #: ratings are unknown or implausible gets no setpoint at all
    nameplate: NameplateConfig | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.unit_id <= 247:
            raise _Invalid("unit_id", self.unit_id, "a Modbus device id between 1 and 247")


#: keys an `inverter:` list entry does not take from the first entry: they are each inverter's own
_OWN_KEYS: Final = ("unit_id", "nameplate")


@dataclass(frozen=True, slots=True)
class MeterRegisterConfig:
    """The one register of a register-table meter that holds the site's net power."""

    #: 0-based PDU address, as on the wire
    address: int = field(default=0, metadata={"required": True})
    type: Literal["int16", "int32", "float32"] = "int32"
    word_order: Literal["big", "little"] = "big"
    registers: Literal["holding", "input"] = "holding"
    #: watts per count (e.g. 0.1)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.address > 0xFFFF:
            raise _Invalid("address", self.address, "a register address within 0..65535")
        if self.scale == 0:
            raise _Invalid("scale", self.scale, "watts per count, not 0")


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """The site meter at the grid connection point, on the first inverter's bus."""

    #: its Modbus device id on that bus
    unit_id: int = field(default=0, metadata={"required": True})
    #: "sunspec" (meter models 201, 202, 203 or 204), or "table" (the `register` below)
    profile: Literal["sunspec", "table"] = "sunspec"
    #: the meter counts power drawn from the grid as positive (the SunSpec meters' convention);
    #: false for a meter that counts export as positive
    import_positive: bool = True
    #: profile "table": where the net power is
    register: MeterRegisterConfig | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.unit_id <= 247:
            raise _Invalid("unit_id", self.unit_id, "a Modbus device id between 1 and 247")
        if self.profile == "table" and self.register is None:
            raise _Invalid("register", None, "the register that holds the net power (profile: table)")
        if self.profile == "sunspec" and self.register is not None:
            raise _Invalid("register", "given", "none with profile sunspec (the meter model says where)")


@dataclass(frozen=True, slots=True)
class PointConfig:
    """One mirrored data point (per-utility reading of the ReadingType)."""

    #: ReadingType dataQualifier; 0 = "not applicable", the usual reading of "default"
    data_qualifier: int = 0


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Sampling and reporting cadence."""

    interval_s: int = 30
    #: post rate used when the server's MirrorUsagePoint carries no postRate
    default_post_rate_s: int = 300
    status_interval_s: int = 60
    #: how often the inverter's ratings are re-read (changes go to DERCapability/DERSettings)
    ratings_interval_s: int = 60
    #: readings older than this are dropped from the outbox (counted and logged)
    outbox_max_age_s: int = 7 * 24 * 3600
    power: PointConfig = field(default_factory=PointConfig)
    frequency: PointConfig = field(default_factory=PointConfig)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or (60 % self.interval_s and self.interval_s % 60):
            raise _Invalid("interval_s", self.interval_s, "a divisor of 60 s or a whole number of minutes")
        if not 1 <= self.ratings_interval_s <= 60:
            expected = "1 to 60 s: ratings are never used older than a minute"
            raise _Invalid("ratings_interval_s", self.ratings_interval_s, expected)


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """DER control behaviour and its fail-safe."""

    #: after this long without reaching the server, fall back to the last DefaultDERControl
    fail_safe_after_s: int = 3600
    #: re-write the setpoint this often while a control is in force (keeps revert timers fed)
    reassert_interval_s: int = 60
    #: state-of-charge limits the battery is not driven beyond (percent)
    min_soc_percent: float = 5.0
    max_soc_percent: float = 100.0

    def __post_init__(self) -> None:
        if self.reassert_interval_s < 1:
            raise _Invalid("reassert_interval_s", self.reassert_interval_s, "at least 1 second")
        if self.max_soc_percent > 100:
            raise _Invalid("max_soc_percent", self.max_soc_percent, "a percentage up to 100")
        if self.min_soc_percent >= self.max_soc_percent:
            raise _Invalid("min_soc_percent", self.min_soc_percent, "less than max_soc_percent")


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """Status LED and button pins (BCM numbering)."""

    #: auto = the SoC's gpiochip, else RPi.GPIO, else none (one log line); gpiochip/rpi insist on one
    backend: Literal["auto", "gpiochip", "rpi", "fake", "none"] = "auto"
    led_red: int = 17
    led_green: int = 27
    led_blue: int | None = 22
    button: int = 23
    #: the button pulls the pin to ground when pressed
    button_active_low: bool = True


@dataclass(frozen=True, slots=True)
class StatusPageConfig:
    """The installer's local status page."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    #: commissioning mode (a 5-10 s button hold) opens the page on this address for a while
    commissioning_host: str = "0.0.0.0"  # noqa: S104 - the installer's phone is on the site network
    commissioning_s: int = 1800
    #: the page's times are in this IANA zone (e.g. "Europe/Berlin"); "localtime" = the box's own
    time_zone: str = "localtime"

    def __post_init__(self) -> None:
        if self.time_zone != "localtime":
            try:
                zoneinfo.ZoneInfo(self.time_zone)
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                raise _Invalid(
                    "time_zone", self.time_zone, 'an IANA time zone such as "Europe/Berlin"'
                ) from None


@dataclass(frozen=True, slots=True)
class Config:
    """The whole gateway configuration."""

    server: ServerConfig
    inverter: InverterConfig = field(default_factory=InverterConfig, metadata={"required": True})
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    status_page: StatusPageConfig = field(default_factory=StatusPageConfig)
    ota: OtaSettings = field(default_factory=OtaSettings)
    state_dir: Path = Path("/var/lib/wattsmart-gateway")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: the optional site meter at the grid connection point
    meter: MeterConfig | None = None
    #: every inverter when `inverter:` is a list (filled by `load_config`; `inverter` is the first)
    inverters: tuple[InverterConfig, ...] = field(default=(), metadata={"internal": True})

    def site(self) -> tuple[InverterConfig, ...]:
        """Every configured inverter, the first being `inverter`."""
        return self.inverters or (self.inverter,)


def load_config(path: Path | str) -> Config:
    """Read and validate the YAML file at `path`; raise ConfigError naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem})") from None
    try:
        data, entries = _inverter_list(data)
        config = from_dict(Config, data, "")
        if entries:
            site = tuple(from_dict(InverterConfig, e, f"inverter[{i}]") for i, e in enumerate(entries))
            config = dataclasses.replace(config, inverter=site[0], inverters=site)
        _check_site(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = _resolve_paths(config, path.parent)
    listed = len(config.inverters) > 1
    for index, inverter in enumerate(config.site()):
        key = f"inverter[{index}]" if listed else "inverter"
        if inverter.revert_timeout_s <= config.control.reassert_interval_s:
            raise ConfigError(
                f"{path}: {key}.revert_timeout_s: got {inverter.revert_timeout_s}, expected more than "
                f"control.reassert_interval_s ({config.control.reassert_interval_s}): the battery would "
                "revert between refreshes"
            )
        # The HAL checks what it alone knows (standard baud rates, ...); its reason names the setting.
        from app.hardware import inverter_settings

        try:
            inverter_settings(inverter)
        except ValueError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    return config


def _inverter_list(data: object) -> tuple[object, list[dict[str, object]]]:
    """`inverter:` as a list: each entry takes the keys it leaves out (the bus: transport, port, ...)
    from the first, except its own unit id and nameplate. Returns the data with the first entry
    as `inverter`, and every entry; a single mapping stays as it is (no entries)."""
    if not isinstance(data, dict) or not isinstance(data.get("inverter"), list):
        return data, []
    items: list[object] = data["inverter"]
    if not items:
        raise ConfigError("inverter: got an empty list, expected one inverter or more")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"inverter[{index}]: expected a mapping of keys, got {_show(item)}")
    first: dict[str, object] = items[0]  # type: ignore[assignment]
    shared = {k: v for k, v in first.items() if k not in _OWN_KEYS}
    entries = [first] + [{**shared, **item} for item in items[1:]]  # type: ignore[dict-item]
    return {**data, "inverter": first}, entries


def _check_site(config: Config) -> None:
    """Inverters on one bus need distinct unit ids and the same bus timing (they share one connection)."""
    seen: dict[tuple[str, int], int] = {}
    timing: dict[str, tuple[int, InverterConfig]] = {}
    for index, inverter in enumerate(config.site()):
        bus = _bus_key(inverter)
        if inverter.transport != "sim":
            other = seen.get((bus, inverter.unit_id))
            if other is not None:
                raise ConfigError(
                    f"inverter[{index}].unit_id: got {inverter.unit_id}, expected one that inverter[{other}] "
                    "on the same bus does not use"
                )
            seen[(bus, inverter.unit_id)] = index
        first = timing.setdefault(bus, (index, inverter))
        for key in ("timeout_s", "retries"):
            if getattr(inverter, key) != getattr(first[1], key):
                raise ConfigError(
                    f"inverter[{index}].{key}: got {getattr(inverter, key)}, expected "
                    f"{getattr(first[1], key)} as inverter[{first[0]}] on the same bus (one connection)"
                )
    meter = config.meter
    if meter is not None:
        if config.inverter.transport == "sim":
            return  # the demo's simulated meter: no bus
        if (_bus_key(config.inverter), meter.unit_id) in seen:
            raise ConfigError(f"meter.unit_id: got {meter.unit_id}, expected one no inverter on its bus uses")


def _bus_key(inverter: InverterConfig) -> str:
    if inverter.transport == "rtu":
        return inverter.serial.port
    if inverter.transport == "tcp":
        return f"{inverter.host}:{inverter.port}"
    return "sim"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML would silently keep the last one."""


def _no_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[object, object]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the second would silently win)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def from_dict(cls: type[T], data: object, path: str) -> T:
    """Build dataclass `cls` from plain YAML data, checking every key and type."""
    where = path or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    # an "internal" field is filled by the loader, never from the file
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{_join(path, str(unknown[0]))}: unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in data:
            no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if no_default or f.metadata.get("required"):
                raise ConfigError(f"{key}: missing (required)")
            continue
        kwargs[name] = _convert(hints[name], data[name], key)
    try:
        return cls(**kwargs)
    except _Invalid as exc:
        raise ConfigError(
            f"{_join(path, exc.key)}: got {_show(exc.value)}, expected {exc.expected}"
        ) from None


def _convert(tp: Any, value: object, key: str) -> Any:
    """Check and convert one value to type `tp`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) or value not in choices:
            shown = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{key}: got {_show(value)}, expected one of {shown}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, key)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: got {_show(value)}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: got {_show(value)}, expected a whole number")
        if value < 0:
            raise ConfigError(f"{key}: got {_show(value)}, expected a number ≥ 0")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: got {_show(value)}, expected a number")
        if value < 0:
            raise ConfigError(f"{key}: got {_show(value)}, expected a number ≥ 0")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: got {_show(value)}, expected a non-empty string")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: got {_show(value)}, expected a file or folder path")
        return Path(value)
    raise TypeError(f"config type {tp!r} at {key} is not supported")  # a bug in this module


def _resolve_paths(config: Config, base: Path) -> Config:
    """Make relative paths relative to the config file's folder, as an installer expects."""

    def fix(p: Path) -> Path:
        # absolute but not resolved: identity/current is a symlink that switches on rotation
        return p if p.is_absolute() else Path(os.path.abspath(base / p))

    server = dataclasses.replace(
        config.server,
        ca_file=fix(config.server.ca_file),
        cert_file=fix(config.server.cert_file),
        key_file=fix(config.server.key_file),
    )

    def profile(inverter: InverterConfig) -> InverterConfig:
        if inverter.profile.endswith((".yaml", ".yml")):  # a file of ours, not "sunspec" or a shipped name
            return dataclasses.replace(inverter, profile=str(fix(Path(inverter.profile))))
        return inverter

    inverters = tuple(profile(i) for i in config.inverters)
    return dataclasses.replace(
        config,
        server=server,
        inverter=profile(config.inverter),
        inverters=inverters,
        state_dir=fix(config.state_dir),
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
