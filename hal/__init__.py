"""Hardware behind small interfaces: the battery inverter (Modbus) and the status LED and button.

`hal` knows nothing of IEEE 2030.5 and never imports `app`. What the app uses:

* `hal.inverter`: `InverterSettings` -> `open_inverter()` (async context manager, refreshes the
  device-side revert timer) or `connect_inverter()`; the `BatteryInverter` interface with
  `Ratings` / `Telemetry` in SI units (None = unknown); transports "tcp", "rtu" (and "sim" where
  the lab package is installed); profiles "sunspec" or a register-table YAML file.
* `hal.modbus`: `SerialSettings`, `TcpSettings` (either is a `BusEndpoint`), `BusSettings`; `ModbusBus`,
  one per bus endpoint.
* `hal.errors`: one hierarchy; `TransientHardwareError` (retry), `InverterProtocolError`,
  `ConfigurationError` / `ProfileError` (reconfigure).
* `hal.gpio`: `GpioSettings` -> `Gpio` (status LED patterns, polled push button; RPi.GPIO or fake).
* Not here: the simulators for tests and the demo (`SimInverter` behind transport "sim", the SunSpec
  Modbus server) live in the development-only lab package, `wattsmart_lab` (tests/labpkg/).
"""
