"""A Modbus server exposing simulated SunSpec battery inverters, with fault injection.

Used by the tests and by the demo. Built on pymodbus 3.16's `SimDevice` with an async `action`
callback (not the deprecated datastores). Framing "socket" is Modbus TCP; framing "rtu" speaks RTU
frames (address + CRC) over a TCP listener, which a client reaches as the pyserial URL
`socket://127.0.0.1:PORT` through the real RTU client code path. With `serial_port=`, the server
opens that serial device instead (a real RS-485 adapter, or one end of a pty pair in tests).

    async with SunSpecServer(port=0) as server:
        server.device.faults.silent = True      # or exception_code / delay_s / garbage / ignore_writes
        await server.cut(); await server.restore()

Standalone: `python -m wattsmart_lab.sunspec_server --port 5020 [--rtu] [--legacy]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from hal.inverter.battery import BatterySpec
from wattsmart_lab.meter_sim import MeterDevice, Profile, household_load_w, no_pv
from wattsmart_lab.sunspec_device import DER_MODELS, LEGACY_MODELS, Faults, SunSpecDevice

_LOGGER = logging.getLogger(__name__)

Framing = Literal["socket", "rtu"]


class SunSpecServer:
    """Serves one or more `SunSpecDevice`s on 127.0.0.1 (port 0 = pick a free one)."""

    def __init__(
        self,
        spec: BatterySpec | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        framing: Framing = "socket",
        device_id: int = 1,
        models: Sequence[int] = DER_MODELS,
        clock: Callable[[], float] = time.monotonic,
        base: int = 40000,
        end_marker: bool = True,
        extra_devices: Sequence[SunSpecDevice] = (),
        serial_port: str | None = None,
        baudrate: int = 9600,
    ) -> None:
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.host = host
        self.port = port
        self.framing = framing
        self.clock = clock
        self.device = SunSpecDevice(
            spec or BatterySpec(),
            tuple(models),
            base=base,
            device_id=device_id,
            start=clock(),
            end_marker=end_marker,
        )
        self.devices = {d.device_id: d for d in (self.device, *extra_devices)}
        self.meters: dict[int, MeterDevice] = {}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    @classmethod
    def site(
        cls,
        specs: Sequence[BatterySpec],
        *,
        first_id: int = 1,
        models: Sequence[int] = DER_MODELS,
        clock: Callable[[], float] = time.monotonic,
        meter_id: int | None = None,
        load: Profile = household_load_w,
        **kwargs: Any,
    ) -> SunSpecServer:
        """N simulated inverters on one server (one bus), unit ids `first_id`, `first_id + 1`, ...,
        and with `meter_id` a site meter that sees them and the household `load`."""
        if not specs:
            raise ValueError("a site needs at least one battery")
        more = [
            SunSpecDevice(spec, tuple(models), device_id=first_id + i, start=clock())
            for i, spec in enumerate(specs[1:], start=1)
        ]
        server = cls(specs[0], device_id=first_id, models=models, clock=clock, extra_devices=more, **kwargs)
        if meter_id is not None:
            server.add_meter(meter_id, load)
        return server

    def add_meter(self, device_id: int, load: Profile = household_load_w, pv: Profile = no_pv) -> MeterDevice:
        """A simulated site meter at `device_id` that sees every battery of this server (before `start`)."""
        if device_id in self.devices:
            raise ValueError(f"unit id {device_id} is a battery already")
        meter = MeterDevice(device_id, tuple(self.devices.values()), load=load, pv=pv)
        self.meters[device_id] = meter
        return meter

    def unit(self, device_id: int) -> SunSpecDevice:
        """The simulated inverter at `device_id`."""
        return self.devices[device_id]

    @property
    def faults(self) -> Faults:
        """Fault switches of the main device."""
        return self.device.faults

    @property
    def serial_url(self) -> str:
        """The pyserial URL an RTU client uses to reach this server."""
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start listening (or open the serial port); afterwards `port` holds the bound TCP port."""
        sim_devices = [
            SimDevice(
                id=dev.device_id,
                simdata=[SimData(dev.base, values=dev.regs, datatype=DataType.REGISTERS)],
                action=self._make_action(dev),
            )
            for dev in self._all()
        ]
        framer = FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET
        # ignore_missing_devices makes a NoSuchIdException from the action mean "send no reply":
        # that is how a silent device is simulated.
        server: ModbusTcpServer | ModbusSerialServer
        if self.serial_port is not None:
            server = ModbusSerialServer(
                sim_devices,
                port=self.serial_port,
                baudrate=self.baudrate,
                reconnect_delay=0,
                ignore_missing_devices=True,
            )
        else:
            server = ModbusTcpServer(
                sim_devices, framer=framer, address=(self.host, self.port), ignore_missing_devices=True
            )
        await server.serve_forever(background=True)
        listener = getattr(server, "transport", None)
        sockets = getattr(listener, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._server = server
        _LOGGER.info("SunSpec simulator (%s framing) listening on %s:%d", self.framing, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
            # Let the transports finish closing before the loop may end.
            await asyncio.sleep(0)

    async def cut(self) -> None:
        """Simulate a cable cut: connections drop and nothing answers until `restore()`."""
        await self.stop()

    async def restore(self) -> None:
        """Reconnect the cable: listen again on the same port, with the device state kept."""
        await self.start()

    def _all(self) -> list[SunSpecDevice | MeterDevice]:
        return [*self.devices.values(), *self.meters.values()]

    def _make_action(self, dev: SunSpecDevice | MeterDevice) -> SimAction:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            faults = dev.faults
            if faults.silent:
                raise NoSuchIdException(f"simulated silent device {dev.device_id}")
            if faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            if faults.exception_code is not None:
                return ExcCodes(faults.exception_code)
            written = [int(v) for v in set_values] if set_values is not None else None
            refused = dev.refuses_write(address, written) if written else None
            if refused is not None:
                return ExcCodes(refused)
            dev.on_access(self.clock(), address if written else None, written)
            registers[:] = dev.regs
            if faults.garbage and written is None:
                dev.garbage_overlay(registers)
            if written and faults.ignore_writes and set_values is not None:
                # The device acknowledges the write but keeps its old values.
                offset = address - start_address
                set_values[:] = registers[offset : offset + len(written)]  # type: ignore[assignment]
            _ = function_code, count
            return None

        return action

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve a simulated SunSpec battery until interrupted."""
    parser = argparse.ArgumentParser(
        description="Simulated SunSpec battery inverter (Modbus TCP or RTU framing)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020)
    parser.add_argument("--device-id", type=int, default=1)
    parser.add_argument(
        "--rtu", action="store_true", help="RTU framing over TCP (client: socket://HOST:PORT)"
    )
    parser.add_argument("--legacy", action="store_true", help="models 1/103/120/121/124 instead of 701-713")
    parser.add_argument("--capacity-wh", type=float, default=10000.0)
    parser.add_argument("--max-w", type=float, default=5000.0)
    parser.add_argument("--soc", type=float, default=50.0)
    parser.add_argument("--units", type=int, default=1, help="inverters on the bus (ids from --device-id)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = BatterySpec(
        max_w=args.max_w,
        max_charge_w=args.max_w,
        max_discharge_w=args.max_w,
        capacity_wh=args.capacity_wh,
        initial_soc_pct=args.soc,
    )
    server = SunSpecServer.site(
        [spec] * max(1, args.units),
        first_id=args.device_id,
        host=args.host,
        port=args.port,
        framing="rtu" if args.rtu else "socket",
        models=LEGACY_MODELS if args.legacy else DER_MODELS,
    )

    async def serve() -> None:
        async with server:
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
