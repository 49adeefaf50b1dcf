"""Update settings with the defaults a production box uses (to become the `ota:` config section)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# the error app.config's loader turns into "ota.<key>: got <value>, expected <what>"
from app.invalid import Invalid

#: root's update state folder, and where releases before it kept the state: inside the gateway's own
#: folder, whose owner could replace it (app/ota/README.md, "Trust model" and "Migration")
STATE_DIR = Path("/var/lib/wattsmart-gateway-ota")
LEGACY_STATE_DIR = Path("/var/lib/wattsmart-gateway/ota")


@dataclass(frozen=True, slots=True)
class OtaSettings:
    """Where releases live, whom to trust, how long a new release must prove itself, where to poll."""

    #: holds releases/<version>/, the `current` and `previous` links (deploy/install.sh uses the same)
    root: Path = Path("/opt/wattsmart-gateway")
    #: state.json, the security floor, the lock and downloads: root's alone (0755, files 0644), outside
    #: the gateway's own state folder so that the gateway cannot replace it; it reads state.json for its LED
    state_dir: Path = STATE_DIR
    #: trusted fleet public keys (JSON, see keys.py); rewritten only by a signed key rotation
    trust_store: Path = Path("/etc/wattsmart-gateway/ota-trust.json")
    #: the gateway's systemd unit, restarted on a switch
    service: str = "wattsmart-gateway.service"
    systemctl: str = "systemctl"
    #: the new release must reach READY (systemd: active) within this many seconds of the switch...
    ready_timeout_s: float = 300.0
    #: ...and then stay active without a restart this long before the update is committed
    healthy_for_s: float = 600.0
    #: how often a trial looks at the service; also how soon the updater service takes over a trial
    #: nobody watches (`update install --no-wait`): it stat()s the state file at this interval
    probe_interval_s: float = 5.0
    #: power cuts during a trial beyond this count roll back (a release that reboots the box)
    max_trial_boots: int = 2
    #: the gateway keeps this file (`{"until": epoch}`) while a grid-control event is in force; updates
    #: wait for it (app.ota.state.set_control_in_force / control_in_force)
    control_flag: Path = Path("/run/wattsmart-gateway/control-in-force")
    #: how often to look again while a grid-control event is in force
    control_retry_s: float = 60.0
    #: an update waits for grid-control events at most this long in all, then goes ahead between
    #: looks (the flag is the gateway's word, and a gateway must not be able to stop updates for good)
    max_control_wait_s: float = 24 * 3600.0
    #: releases kept on disk besides the current one (the previous one is the rollback target)
    keep_releases: int = 1
    #: the fleet's signed manifest (https://); no polling when unset
    manifest_url: str | None = None
    #: optional fleet endpoint receiving a JSON POST per update outcome
    report_url: str | None = None
    poll_interval_s: float = 6 * 3600.0
    #: each poll is delayed by ±this fraction of the interval, so a fleet does not poll in step
    poll_jitter: float = 0.25
    #: CA bundle for the fleet host; None uses the system's trust store
    ca_file: Path | None = None
    download_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.state_dir == LEGACY_STATE_DIR:
            # the value configs copied from the old example carry: the folder moved out of the gateway's reach
            object.__setattr__(self, "state_dir", STATE_DIR)
        url = self.manifest_url
        if url is not None and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise Invalid("manifest_url", url, "an https:// URL (plain http only on loopback, for the lab)")
        if not 0 <= self.poll_jitter < 1:
            raise Invalid("poll_jitter", self.poll_jitter, "a fraction from 0 up to (not including) 1")
        if self.probe_interval_s <= 0:
            # the trial and the updater's wait for trials others left tick at this interval
            raise Invalid("probe_interval_s", self.probe_interval_s, "seconds > 0")
        if not 0 <= self.max_control_wait_s <= 7 * 86400:
            raise Invalid("max_control_wait_s", self.max_control_wait_s, "seconds from 0 to 604800 (a week)")
        if self.healthy_for_s <= 0 or self.ready_timeout_s <= 0:
            raise Invalid("healthy_for_s", self.healthy_for_s, "seconds > 0 (and ready_timeout_s too)")
