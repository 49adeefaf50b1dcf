"""Hardware behind small interfaces: the battery inverter (Modbus) and the status LED and button."""
