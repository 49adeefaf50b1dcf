"""The simulated battery's settings (transport "sim"); the model itself is in the lab package."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatterySpec:
    """Ratings and starting point of a simulated battery."""

    max_w: float = 5000.0
    max_charge_w: float = 5000.0
    max_discharge_w: float = 5000.0
    capacity_wh: float = 10000.0
    initial_soc_pct: float = 50.0
    ramp_w_per_s: float = 2500.0
    nominal_hz: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_w", "max_charge_w", "max_discharge_w", "capacity_wh", "ramp_w_per_s", "nominal_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BatterySpec.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.initial_soc_pct <= 100.0:
            raise ValueError(f"BatterySpec.initial_soc_pct must be within 0..100, got {self.initial_soc_pct}")
