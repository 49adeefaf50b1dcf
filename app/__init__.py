"""wattsmart-gateway: the IEEE 2030.5 agent between a battery inverter and the Wattsmart DGBMS."""

__version__ = "0.1.0"
