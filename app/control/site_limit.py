"""Export and import limits held at the grid connection point with the site meter; at the battery
without one.

Without a meter, a CSIP-AUS export limit (opModExpLimW) caps the battery's own discharge and an
import limit (opModImpLimW) its charge. With a meter, what counts is the site's export or import:
the battery may discharge as much as the site consumes beyond it, plus the export limit, and
charge the import limit less what the site already draws. Each control step reads the meter and
the battery together; when the meter does not answer (or says nothing), the limits fall back to
the battery alone at once. opModGenLimW and opModLoadLimW always hold at the battery.
"""

from __future__ import annotations

import logging
from typing import Final

from app.meter import ObservedMeter
from hal.errors import HalError

_LOGGER = logging.getLogger(__name__)

#: while an export limit is held at the connection point, the meter is followed this often
METER_CHECK_S: Final = 5.0
#: a silent meter is asked again this often (each try holds the shared bus for its timeouts)
METER_RETRY_S: Final = 30.0


def battery_discharge_cap(limit_w: float, site_export_w: float, battery_w: float) -> float:
    """The battery discharge (W, >= 0) that keeps the site's export at `limit_w`.

    The site exports battery + PV - load, so the battery may give the limit plus the load the PV
    does not cover (never a charge: the cap only holds discharge back).
    """
    return max(0.0, limit_w - site_export_w + battery_w)


def battery_charge_cap(limit_w: float, site_export_w: float, battery_w: float) -> float:
    """The battery charge (W, >= 0) that keeps the site's import at `limit_w`.

    The site imports load - PV - battery, so the battery may take the limit less the load the PV
    does not cover (never a discharge: the cap only holds charge back).
    """
    return max(0.0, limit_w + site_export_w - battery_w)


class ConnectionPoint:
    """The site meter's view of export and import limits; `battery_only` says whether it fell back."""

    def __init__(self, meter: ObservedMeter) -> None:
        self.meter = meter
        self.battery_only = False
        self._tried: float | None = None

    async def site_export(self, battery_w: float | None, now: float) -> float | None:
        """The site's net export now (W, + export), read fresh at monotonic time `now`; None while the
        meter is silent or the battery's own power is unknown (the limits then hold at the battery).

        A silent meter is tried again only every METER_RETRY_S.
        """
        export = None
        silent = self.battery_only and self._tried is not None and now - self._tried < METER_RETRY_S
        if not silent:
            self._tried = now
            try:
                export = (await self.meter.read()).export_w
            except HalError as exc:
                _LOGGER.debug("meter not read: %s", exc)
        if export is None or battery_w is None:
            if not self.battery_only:
                _LOGGER.warning(
                    "site meter silent: export/import limits held at the battery until it answers"
                )
            self.battery_only = True
            return None
        if self.battery_only:
            _LOGGER.info("site meter answers: export/import limits held at the connection point again")
        self.battery_only = False
        return export
