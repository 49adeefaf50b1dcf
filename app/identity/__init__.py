"""The box's 2030.5 identity: a key born on the box, certificate install and rotation, expiry watched.

Layout of `<state_dir>/identity/` (folder 0700, everything owned by the service user)::

    gen-0001-5f0e2a/     one generation, written once, never changed afterwards
      key.pem            the P-256 private key, PKCS#8, mode 0600, never logged or copied
                         (a later generation with the same key hard-links it)
      csr.pem            the request sent to the CA
      cert.pem           our certificate followed by the CA intermediates (what TLS presents)
      chain.pem          the intermediates alone
    current -> gen-0002-…    the identity in force
    previous -> gen-0001-…   the last identity the server accepted, while `current` is on trial
    pending -> gen-0003-…    a prepared key (and CSR) waiting for its certificate
    .lock                serialises the command line and the running gateway

Point the configuration at the store with `server.cert_file: <state_dir>/identity/current/cert.pem`
and `server.key_file: <state_dir>/identity/current/key.pem`; the gateway then takes its files from
`IdentityStore.current()`. Paths outside the folder are used as they are (no rotation).

Lifecycle: `identity init` prepares a pending key and CSR (beside the identity in force, if any);
`identity install` checks the signed certificate (our key, in date, chain to `server.ca_file`)
and makes it current while keeping the previous one as the fallback.

Wiring in the gateway (app/gateway.py, through `app.identity.trial.CertificateTrial`):

- the session's TLS context is built from `files = store.current()` via
  `files.server_config(config.server)`; the trial polls `store.changed(files)` and, when another
  identity is in force (an install, a fall-back, a first certificate), the gateway stops with
  EXIT_RESTART so that systemd starts it again on the new identity (a process restart, not a reboot);
- while `store.on_trial()`: once the server lists our EndDevice and the session reports no problem,
  `store.confirm_working(files)` retires the previous identity; when the server refuses the
  certificate (a session problem of kind CERTIFICATE or NOT_REGISTERED), `store.fall_back(files)`
  brings the previous identity back (the refused key stays pending) and the gateway restarts on it;
- `watch_store(store)` gives an `ExpiryWatch`, run as the supervised part "expiry" with
  `fetch_server=server_cert_fetch(...)` (start-up and daily); `identity_status(store, watch)`
  feeds the status page, `watch.attention` the LED's attention pattern, `watch.error` the error state.

Reading certificates needs no `cryptography` (app.sep.certificate); making keys and CSRs and
checking a chain at install do, and import it only then (`CsrProfile` is loaded on first use).
"""

from typing import TYPE_CHECKING

from app.identity.errors import CertificateRefused, IdentityStoreError, KeyExists, NoIdentity
from app.identity.expiry import CertExpiry, ExpiryLevel, ExpiryWatch, expiry_level, watch_store
from app.identity.status import identity_status
from app.identity.store import IdentityFiles, IdentityStore, PendingKey

if TYPE_CHECKING:
    from app.identity.csr import CsrProfile

__all__ = [
    "CertExpiry",
    "CertificateRefused",
    "CsrProfile",
    "ExpiryLevel",
    "ExpiryWatch",
    "IdentityFiles",
    "IdentityStore",
    "IdentityStoreError",
    "KeyExists",
    "NoIdentity",
    "PendingKey",
    "expiry_level",
    "identity_status",
    "watch_store",
]


def __getattr__(name: str) -> object:
    """`CsrProfile` on first use: it brings `cryptography`, which the running gateway never needs."""
    if name == "CsrProfile":
        from app.identity.csr import CsrProfile

        return CsrProfile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
