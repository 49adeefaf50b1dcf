"""The DER control engine: a pure schedule of 2030.5 events and an executor that drives the battery.

`schedule` decides (programs, records, now, rng -> Plan) with no I/O; `engine` reads the server's
tree, persists the records and hands the plan to `executor`, which writes the inverter.

Wiring (app/gateway.py, once the box is commissioned):

    engine = ControlEngine(config, inverter, server, lfdi, rng=rng, health=health, in_force_flag=flag)
    supervisor.add("control", engine.run, MAX_SILENCE_S)          # 120 s
    supervisor.on_shutdown("release the battery", engine.stop)

`server` is the server port (`app.client.port.ServerPort`: snapshots, `now`, POST of the responses).

Import the modules themselves (`app.control.engine`, `app.control.schedule`): this package
re-exports nothing, so the pure scheduler can be loaded without the engine's I/O.
"""
