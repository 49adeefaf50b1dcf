"""One paced, reconnecting Modbus connection per physical bus (RTU over RS-485, or TCP).

Why this wrapper exists rather than using pymodbus directly:

* pymodbus' defaults (`timeout=3, retries=3`) block for 12 s on a dead device; here timeouts are
  explicit and a whole call is also bounded by our own deadline.
* RTU frames carry no transaction id: a reply that arrives after its request timed out would be
  taken as the reply to the next request (pymodbus PR #2636). Retries are therefore ours (pymodbus
  gets `retries=0`), and after any timeout, or a request cancelled in flight, the bus stays quiet
  for `quiet_after_timeout_s`, so a reply up to that late arrives while nothing is outstanding and
  pymodbus drops it. Replies later still are caught only by the reply-length check and by
  read-back; size the timeout to the device.
* Cheap RS-485 devices need silence between frames; pymodbus' async transport enforces none, so
  requests are paced by `inter_frame_gap_s`.
* pymodbus' own reconnect loop is disabled (`reconnect_delay=0`): reconnects happen here, with
  exponential backoff, and while backing off calls fail at once instead of blocking the bus.

Errors come out as the `hal.errors` hierarchy, never as pymodbus types.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from hal import rs485
from hal.errors import (
    ConfigurationError,
    InverterBusy,
    InverterProtocolError,
    InverterUnreachable,
    ModbusExceptionReply,
)
from hal.rs485 import Rs485Settings

_LOGGER = logging.getLogger(__name__)

# Modbus exception codes that mean "try again shortly" (5 ACKNOWLEDGE, 6 DEVICE BUSY).
_BUSY_CODES = frozenset({5, 6})
# Gateway exceptions (10 path unavailable, 11 target failed to respond) mean the device is not there.
_GATEWAY_CODES = frozenset({10, 11})
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123


@dataclass(frozen=True)
class SerialSettings:
    """An RS-485 serial port: device path (or a pyserial URL such as socket://host:port) and framing."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    handle_local_echo: bool = False
    #: kernel RS-485 mode (the UART switches the transceiver by RTS); None: auto-direction / USB
    rs485: Rs485Settings | None = None

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("serial port must not be empty (e.g. /dev/ttyUSB0)")
        if self.baudrate not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
            raise ValueError(f"baudrate {self.baudrate!r} is not a standard Modbus RTU rate")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be 'N', 'E' or 'O', got {self.parity!r}")
        if self.stopbits not in (1, 2):
            raise ValueError(f"stopbits must be 1 or 2, got {self.stopbits!r}")
        if self.bytesize not in (7, 8):
            raise ValueError(f"bytesize must be 7 or 8, got {self.bytesize!r}")

    def char_time_s(self) -> float:
        """Time on the wire of one character (start + data + parity + stop bits)."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate


@dataclass(frozen=True)
class TcpSettings:
    """A Modbus TCP endpoint."""

    host: str
    port: int = 502

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("tcp host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"tcp port must be within 1..65535, got {self.port!r}")


@dataclass(frozen=True)
class BusSettings:
    """Timing of one bus: per-try timeout, retries, pacing and reconnect backoff (seconds).

    `None` picks a default by endpoint type: the inter-frame gap is max(3.5 characters, 20 ms) on serial
    and 0 on TCP; the quiet time after a timeout equals `timeout_s`; the settle time after opening a
    serial port is 0.5 s (some adapters drop the first frame) and 0 on TCP.
    """

    timeout_s: float = 0.5
    retries: int = 1
    inter_frame_gap_s: float | None = None
    quiet_after_timeout_s: float | None = None
    settle_after_connect_s: float | None = None
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    failures_before_reconnect: int = 3

    def __post_init__(self) -> None:
        if not 0.01 <= self.timeout_s <= 30.0:
            raise ValueError(f"timeout_s must be within 0.01..30, got {self.timeout_s!r}")
        if not 0 <= self.retries <= 5:
            raise ValueError(f"retries must be within 0..5, got {self.retries!r}")
        for name in ("inter_frame_gap_s", "quiet_after_timeout_s", "settle_after_connect_s"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 10.0:
                raise ValueError(f"{name} must be within 0..10 s, got {value!r}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("reconnect_min_s must be > 0 and <= reconnect_max_s")
        if self.failures_before_reconnect < 1:
            raise ValueError("failures_before_reconnect must be >= 1")

    def call_budget_s(self) -> float:
        """Longest one request may take on a silent device: every try plus the quiet time between tries."""
        quiet = self.timeout_s if self.quiet_after_timeout_s is None else self.quiet_after_timeout_s
        return self.timeout_s * (self.retries + 1) + quiet * self.retries


#: where a bus is reached: a serial port (RTU over RS-485) or a TCP host and port
BusEndpoint = SerialSettings | TcpSettings
_Client = AsyncModbusSerialClient | AsyncModbusTcpClient
_Op = Callable[[_Client], Awaitable[ModbusPDU]]


@dataclass
class BusStats:
    """Counters of one bus, for health reporting and the benchmark."""

    requests: int = 0
    failures: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    reconnects: int = 0
    gap_s: float = 0.0
    per_device_failures: dict[int, int] = field(default_factory=dict)


def quiet_library_logging() -> None:
    """Silence pymodbus' own per-try ERROR lines (with frame dumps); call once at start-up.

    The bus logs one ERROR when a device goes silent and one INFO when it answers again; pymodbus
    would add an ERROR for every failed try, which on a dead device is a line a second forever.
    """
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def frame_bytes(endpoint: BusEndpoint, pdu_len: int) -> int:
    """Bytes on the wire for one PDU: RTU adds address + CRC, TCP adds the 7-byte MBAP header."""
    return pdu_len + 3 if isinstance(endpoint, SerialSettings) else pdu_len + 7


def endpoint_name(endpoint: BusEndpoint) -> str:
    """Human-readable name of a bus endpoint (port path or host:port), for logs."""
    return endpoint.port if isinstance(endpoint, SerialSettings) else f"{endpoint.host}:{endpoint.port}"


class ModbusBus:
    """One shared pymodbus client per physical bus; requests are serialised and paced.

    Use `read(address, count, device_id)` and `write(address, values, device_id)`; both raise
    `InverterUnreachable` (no reply or no connection), `InverterBusy`, `ModbusExceptionReply` or
    `InverterProtocolError`.
    """

    def __init__(self, endpoint: BusEndpoint, settings: BusSettings | None = None) -> None:
        self.endpoint = endpoint
        self.settings = settings or BusSettings()
        self.stats = BusStats()
        self._is_serial = isinstance(endpoint, SerialSettings)
        self._lock = asyncio.Lock()
        self._client: _Client | None = None
        self._ready_at = 0.0
        self._next_connect_at = 0.0
        self._backoff_s = self.settings.reconnect_min_s
        self._bus_down = False
        self._rs485_failed = False
        self._rs485_logged = False
        self._consecutive_failures = 0
        self._down_devices: set[int] = set()
        self._closed = False

    @property
    def gap_s(self) -> float:
        """Silence kept between two frames on this bus."""
        if self.settings.inter_frame_gap_s is not None:
            return self.settings.inter_frame_gap_s
        if isinstance(self.endpoint, SerialSettings):
            return max(3.5 * self.endpoint.char_time_s(), 0.02)
        return 0.0

    @property
    def connected(self) -> bool:
        """Whether the underlying client holds an open connection."""
        return self._client is not None and self._client.connected

    async def read(
        self, address: int, count: int, device_id: int, *, input_registers: bool = False
    ) -> list[int]:
        """Read `count` holding (FC3) or input (FC4) registers starting at PDU address `address`."""
        if not 1 <= count <= MAX_READ_REGISTERS:
            raise ValueError(f"count must be within 1..{MAX_READ_REGISTERS}, got {count}")
        op = _read_op(address, count, device_id, input_registers)
        response = await self._call(address, device_id, 5, 2 + 2 * count, op)
        registers: list[int] = list(getattr(response, "registers", []))
        # A reply of the wrong length is a reply to some other request (RTU late reply) or a broken device.
        if len(registers) != count:
            raise InverterProtocolError(
                f"device {device_id} at {endpoint_name(self.endpoint)}: asked for {count} registers at "
                f"{address}, got {len(registers)}"
            )
        return registers

    async def write(self, address: int, values: list[int], device_id: int, *, single: bool = False) -> None:
        """Write holding registers in one request: FC16 by default, FC6 with `single` (one register).

        SunSpec requires FC16 support; some vendor maps accept only FC6 for single registers.
        """
        if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
            raise ValueError(f"between 1 and {MAX_WRITE_REGISTERS} registers per write, got {len(values)}")
        if single and len(values) != 1:
            raise ValueError("FC6 writes exactly one register")
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise ValueError(f"register values must be 0..65535, got {values}")
        op = _write_op(address, values, device_id, single)
        await self._call(address, device_id, 5 if single else 6 + 2 * len(values), 5, op)

    async def close(self) -> None:
        """Close the connection; later calls raise `InverterUnreachable`."""
        self._closed = True
        async with self._lock:
            self._drop_client()

    async def _call(self, address: int, device_id: int, req_pdu: int, resp_pdu: int, op: _Op) -> ModbusPDU:
        async with self._lock:
            last_exc: BaseException | None = None
            # Retries are ours, not pymodbus': between two tries the bus stays quiet, so the late reply
            # to the first try cannot be taken for the reply to the second (or to the next request).
            for _ in range(self.settings.retries + 1):
                if self._closed:
                    raise InverterUnreachable(f"bus {endpoint_name(self.endpoint)} is closed")
                client = await self._ensure_client()
                await self._wait_ready()
                self.stats.requests += 1
                self.stats.tx_bytes += frame_bytes(self.endpoint, req_pdu)
                try:
                    async with asyncio.timeout(self.settings.timeout_s + 0.25):
                        response = await op(client)
                except (ModbusException, TimeoutError, OSError) as exc:
                    last_exc = exc
                    self._after_silence()
                    continue
                except asyncio.CancelledError:
                    # Cancelled mid-request (shutdown): the reply may still come, and on RTU the next
                    # request (the release) would take it for its own. Quiet as after a timeout.
                    self._after_silence()
                    raise
                self._set_ready(self.gap_s)
                return self._check_reply(response, address, device_id, resp_pdu)
            self._on_no_reply(device_id, last_exc)
            raise InverterUnreachable(
                f"device {device_id} at {endpoint_name(self.endpoint)} did not answer: {last_exc}"
            ) from last_exc

    async def _wait_ready(self) -> None:
        wait = self._ready_at - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    def _set_ready(self, delay_s: float) -> None:
        self._ready_at = asyncio.get_running_loop().time() + delay_s
        self.stats.gap_s += delay_s

    def _after_silence(self) -> None:
        # Stay quiet long enough for a late reply to arrive while nothing is outstanding (module doc).
        quiet = self.settings.quiet_after_timeout_s
        self._set_ready(max(self.gap_s, self.settings.timeout_s if quiet is None else quiet))
        if self._client is not None and not self._client.connected:
            self._drop_client()

    def _check_reply(self, response: ModbusPDU, address: int, device_id: int, resp_pdu: int) -> ModbusPDU:
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            self.stats.rx_bytes += frame_bytes(self.endpoint, 2)
            if code in _GATEWAY_CODES:
                self._on_no_reply(device_id, ModbusExceptionReply(code, address))
                raise InverterUnreachable(f"device {device_id}: gateway reports no response (code {code})")
            self._on_reply(device_id)
            if code in _BUSY_CODES:
                raise InverterBusy(f"device {device_id} busy (Modbus exception {code}) at {address}")
            raise ModbusExceptionReply(code, address, f"device {device_id}: exception {code} at {address}")
        self.stats.rx_bytes += frame_bytes(self.endpoint, resp_pdu)
        self._on_reply(device_id)
        return response

    async def _ensure_client(self) -> _Client:
        if self._client is not None and self._client.connected:
            return self._client
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self._next_connect_at:
            wait = self._next_connect_at - now
            raise InverterUnreachable(
                f"bus {endpoint_name(self.endpoint)} is down; next attempt in {wait:.1f} s"
            )
        self._drop_client()
        client = self._new_client()
        ok = False
        try:
            if isinstance(self.endpoint, SerialSettings) and self.endpoint.rs485 is not None:
                await self._rs485_mode(self.endpoint.port, self.endpoint.rs485)
            async with asyncio.timeout(self.settings.timeout_s * 2 + 0.5):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            _LOGGER.debug("connect to %s failed: %s", endpoint_name(self.endpoint), exc)
        if not ok:
            client.close()
            self._next_connect_at = loop.time() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self.settings.reconnect_max_s)
            if not self._bus_down:
                self._bus_down = True
                _LOGGER.error(
                    "Modbus bus %s cannot be opened; retrying with backoff", endpoint_name(self.endpoint)
                )
            raise InverterUnreachable(f"cannot open Modbus bus {endpoint_name(self.endpoint)}")
        self._client = client
        self.stats.reconnects += 1
        self._backoff_s = self.settings.reconnect_min_s
        self._consecutive_failures = 0
        if self._bus_down:
            self._bus_down = False
            _LOGGER.info("Modbus bus %s open again", endpoint_name(self.endpoint))
        settle = self.settings.settle_after_connect_s
        if settle is None:
            settle = 0.5 if self._is_serial else 0.0
        self._ready_at = loop.time() + settle
        return client

    async def _rs485_mode(self, port: str, settings: Rs485Settings) -> None:
        """Put the port into kernel RS-485 mode before it is opened; one ERROR line if it cannot be."""
        try:
            flags, before, after = await asyncio.to_thread(rs485.apply, port, settings)
        except OSError as exc:
            if not self._rs485_failed:
                self._rs485_failed = True
                _LOGGER.error("RS-485 mode: %s (inverter.serial.rs485)", exc.strerror or exc)
            raise
        if self._rs485_failed or not self._rs485_logged:
            _LOGGER.info("RS-485 mode on %s: flags %#x, RTS delays %d/%d ms", port, flags, before, after)
        self._rs485_failed, self._rs485_logged = False, True

    def _new_client(self) -> _Client:
        s = self.settings
        if isinstance(self.endpoint, SerialSettings):
            try:
                return AsyncModbusSerialClient(
                    self.endpoint.port,
                    framer=FramerType.RTU,
                    baudrate=self.endpoint.baudrate,
                    bytesize=self.endpoint.bytesize,
                    parity=self.endpoint.parity,
                    stopbits=self.endpoint.stopbits,
                    handle_local_echo=self.endpoint.handle_local_echo,
                    reconnect_delay=0,
                    timeout=s.timeout_s,
                    retries=0,
                )
            except RuntimeError as exc:  # pymodbus' way of saying pyserial is missing
                raise ConfigurationError(f"Modbus RTU needs pyserial (pymodbus[serial]): {exc}") from exc
        return AsyncModbusTcpClient(
            self.endpoint.host, port=self.endpoint.port, reconnect_delay=0, timeout=s.timeout_s, retries=0
        )

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _on_no_reply(self, device_id: int, exc: BaseException | None) -> None:
        self.stats.failures += 1
        self.stats.per_device_failures[device_id] = self.stats.per_device_failures.get(device_id, 0) + 1
        self._consecutive_failures += 1
        if device_id not in self._down_devices:
            self._down_devices.add(device_id)
            _LOGGER.error(
                "Modbus device %d on %s is silent: %s", device_id, endpoint_name(self.endpoint), exc
            )
        # A TCP stream that stops answering is usually half-open (cable cut, peer rebooted): reopen it.
        # A serial port stays open: a silent device says nothing about the port itself.
        if not self._is_serial and self._consecutive_failures >= self.settings.failures_before_reconnect:
            self._drop_client()
            self._consecutive_failures = 0

    def _on_reply(self, device_id: int) -> None:
        self._consecutive_failures = 0
        if device_id in self._down_devices:
            self._down_devices.discard(device_id)
            _LOGGER.info("Modbus device %d on %s answers again", device_id, endpoint_name(self.endpoint))


def _read_op(address: int, count: int, device_id: int, input_registers: bool) -> _Op:
    async def op(client: _Client) -> ModbusPDU:
        if input_registers:
            return await client.read_input_registers(address, count=count, device_id=device_id)
        return await client.read_holding_registers(address, count=count, device_id=device_id)

    return op


def _write_op(address: int, values: list[int], device_id: int, single: bool) -> _Op:
    async def op(client: _Client) -> ModbusPDU:
        if single:
            return await client.write_register(address, values[0], device_id=device_id)
        return await client.write_registers(address, values, device_id=device_id)

    return op


class BusPool:
    """Hands out one shared `ModbusBus` per bus endpoint, reference counted."""

    def __init__(self) -> None:
        # Keyed by the endpoint's name (port path or host:port), so two devices on one RS-485 port
        # can never open it twice, whatever else their settings say.
        self._buses: dict[str, tuple[ModbusBus, int]] = {}

    def acquire(self, endpoint: BusEndpoint, settings: BusSettings) -> ModbusBus:
        """Return the bus for `endpoint`, creating it on first use."""
        key = endpoint_name(endpoint)
        entry = self._buses.get(key)
        if entry is None:
            bus = ModbusBus(endpoint, settings)
            self._buses[key] = (bus, 1)
            return bus
        bus, count = entry
        if bus.endpoint != endpoint or bus.settings != settings:
            raise ConfigurationError(
                f"bus {key} is shared by devices with different settings: "
                f"{bus.endpoint} {bus.settings} vs {endpoint} {settings}"
            )
        self._buses[key] = (bus, count + 1)
        return bus

    async def release(self, bus: ModbusBus) -> None:
        """Drop one reference; the last one closes the bus."""
        key = endpoint_name(bus.endpoint)
        entry = self._buses.get(key)
        if entry is None or entry[0] is not bus:
            await bus.close()
            return
        _, count = entry
        if count <= 1:
            del self._buses[key]
            await bus.close()
        else:
            self._buses[key] = (bus, count - 1)
