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
`IdentityStore.current()` and follows installs without a restart. Paths outside the folder are
used as they are (no rotation).

Lifecycle: `identity init` prepares a pending key and CSR (beside the identity in force, if any);
`identity install` checks the signed certificate (our key, in date, chain to `server.ca_file`)
and makes it current while keeping the previous one as the fallback.

Wiring in the gateway (what the composition root does):

- build the TLS context/HTTP client from `files = store.current()` via
  `files.server_config(config.server)`; before each request cycle, if `store.changed(files)`,
  close the client and build it again (a reconnect picks up an install, no restart);
- after a successful exchange call `store.confirm_working(files)` (cheap when nothing is on
  trial; the previous identity is then deleted); when the server refuses the certificate
  (`TlsHandshakeError` or `NotAuthorized`) and `store.on_trial()`, call `store.fall_back(files)`
  and rebuild: the previous identity returns and the refused key stays pending;
- `watch_store(store)` gives an `ExpiryWatch`; run `watch.run(fetch_server=server_cert_fetch(...))`
  as a supervised task (start-up and daily), call `watch.check()` after a switch, show
  `identity_status(store, watch)` on the status page, drive the LED's attention pattern from
  `watch.attention` and the error state from `watch.error`.
"""

from app.identity.csr import CsrProfile
from app.identity.errors import CertificateRefused, IdentityStoreError, KeyExists, NoIdentity
from app.identity.expiry import CertExpiry, ExpiryLevel, ExpiryWatch, expiry_level, watch_store
from app.identity.status import identity_status
from app.identity.store import IdentityFiles, IdentityStore, PendingKey

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
