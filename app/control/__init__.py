"""The DER control engine: a pure schedule of 2030.5 events and an executor that drives the battery."""
