"""The lab, for development and tests only (never on a box): a 2030.5 server, simulators, the demo.

`server.LabServer` (mutual TLS, scriptable `tree.LabTree`, throw-away `pki`), `sunspec_server`
(SunSpec batteries and a `meter_sim` site meter on Modbus TCP/RTU, also `python -m
wattsmart_lab.sunspec_server`), `sim` (transport "sim": the `battery` model behind the
`BatteryInverter` interface), `timebase` (virtual server time) and `demo` (`make run`).
"""
