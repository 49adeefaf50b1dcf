"""The box's identity on disk: the key and certificate in force, a pending key, the previous identity.

See the package docstring for the folder layout. Generation folders are written once and never
changed; the `current`, `previous` and `pending` symlinks select among them and are swapped
atomically, so the running gateway, the command line and a power cut never see a mix.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Config, ServerConfig
from app.identity import files
from app.identity.errors import CertificateRefused, KeyExists, NoIdentity
from app.sep.identity import CertIdentity, IdentityError, load_cert_identity
from hal.clock import utc_now

if TYPE_CHECKING:
    # `cryptography` serves the commands that make keys and install certificates; the running
    # gateway only reads (app.sep.certificate), so it is imported where the commands need it.
    from cryptography import x509

    from app.identity.csr import CsrProfile

_LOGGER = logging.getLogger(__name__)

FOLDER = "identity"
CURRENT, PREVIOUS, PENDING = "current", "previous", "pending"
KEY, CERT, CHAIN, CSR = "key.pem", "cert.pem", "chain.pem", "csr.pem"


@dataclass(frozen=True, slots=True)
class IdentityFiles:
    """One usable identity: the files TLS loads and who they say we are."""

    #: our certificate followed by the intermediates, as TLS presents them
    cert: Path
    key: Path
    identity: CertIdentity
    #: the generation folder's name; None when the configuration points outside the managed folder
    generation: str | None
    #: what `IdentityStore.changed` compares: the generation, or the files' stat for external ones
    version: object = None

    def server_config(self, server: ServerConfig) -> ServerConfig:
        """`server` with its cert_file and key_file replaced by these (for the TLS context)."""
        return replace(server, cert_file=self.cert, key_file=self.key)


@dataclass(frozen=True, slots=True)
class PendingKey:
    """A key prepared on the box, waiting for its certificate; `csr` goes to the CA."""

    key: Path
    csr: Path
    generation: str


class IdentityStore:
    """The managed identity folder `root`, checked against the trusted roots in `ca_file`.

    `external` is (cert_file, key_file) when the configuration points outside `root`: then
    `current()` serves those files unchanged and rotation applies only to the managed folder.
    """

    def __init__(
        self,
        root: Path,
        ca_file: Path,
        *,
        external: tuple[Path, Path] | None = None,
        wall_clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.root = root
        self.ca_file = ca_file
        self.external = external
        self._wall_clock = wall_clock

    @classmethod
    def from_config(cls, config: Config, *, wall_clock: Callable[[], dt.datetime] = utc_now) -> IdentityStore:
        """The store for `config`: managed when server.cert_file lies inside <state_dir>/identity."""
        root = config.state_dir / FOLDER
        server = config.server
        managed = _inside(server.cert_file, root) and _inside(server.key_file, root)
        external = None if managed else (server.cert_file, server.key_file)
        return cls(root, server.ca_file, external=external, wall_clock=wall_clock)

    @property
    def managed(self) -> bool:
        """True when the gateway's certificate comes from this store's folder."""
        return self.external is None

    # --- reading ---------------------------------------------------------------------------------

    def current(self) -> IdentityFiles:
        """The identity in force; raises NoIdentity when there is none yet."""
        if self.external is not None:
            cert, key = self.external
            stamp = _stamp(cert, key)
            try:
                return IdentityFiles(cert, key, load_cert_identity(cert), None, stamp)
            except IdentityError as exc:
                raise NoIdentity(str(exc)) from None
        name = files.target(self.root / CURRENT)
        if name is None:
            raise NoIdentity(
                f"no certificate installed in {self.root}: run `identity init`, have the CSR "
                "signed, then `identity install`"
            )
        try:
            return self._files(name)
        except NoIdentity:
            # another process switched and retired `name` between our two reads: read again
            if files.target(self.root / CURRENT) in (name, None):
                raise
            return self.current()

    def changed(self, since: IdentityFiles | None) -> bool:
        """Whether the identity in force is no longer `since` (a readlink or two stats: cheap to poll)."""
        if self.external is not None:
            now: object = _stamp(*self.external)
        else:
            now = files.target(self.root / CURRENT)
        return now != (since.version if since is not None else None)

    def pending(self) -> PendingKey | None:
        """The key prepared by `prepare()` that waits for its certificate, if any."""
        name = files.target(self.root / PENDING)
        if name is None:
            return None
        return PendingKey(self.root / name / KEY, self.root / name / CSR, name)

    def previous(self) -> IdentityFiles | None:
        """The last identity the server accepted, kept while a new one is on trial."""
        name = files.target(self.root / PREVIOUS)
        return None if name is None else self._files(name)

    def on_trial(self) -> bool:
        """True between an install and the first successful exchange with the server."""
        return files.target(self.root / PREVIOUS) is not None

    # --- changing --------------------------------------------------------------------------------

    def prepare(self, profile: CsrProfile, *, replace_pending: bool = False) -> PendingKey:
        """Create a new key and CSR beside the identity in force; it takes over on `install`."""
        from app.identity.csr import build_csr, csr_pem, key_pem, new_key

        owner = self._owner()
        with files.locked(self._ensure_root(owner), owner=owner):
            old = self.pending()
            if old is not None and not replace_pending:
                raise KeyExists(
                    f"a key is already prepared and waits for its certificate (CSR: {old.csr}); "
                    "install that certificate, or pass --force to replace the prepared key"
                )
            key = new_key()
            tmp = self._new_tmp(owner)
            files.write_new(tmp / KEY, key_pem(key), mode=files.PRIVATE, owner=owner)
            csr = build_csr(key, profile)
            files.write_new(tmp / CSR, csr_pem(csr), mode=files.PUBLIC, owner=owner)
            name = self._publish(tmp)
            files.point(self.root / PENDING, name, owner=owner)
            self._collect()
        if old is not None:
            _LOGGER.info("replaced the prepared key %s with %s", old.generation, name)
        _LOGGER.info("prepared a new P-256 key and CSR in %s", self.root / name)
        return PendingKey(self.root / name / KEY, self.root / name / CSR, name)

    def install(self, cert_data: bytes, chain_data: bytes = b"") -> IdentityFiles:
        """Check and install a signed certificate; it becomes current, the old one kept until confirmed.

        Raises CertificateRefused (one line, nothing changed) for a certificate that does not match
        the pending or current key, is out of date, or has no chain to the configured root.
        """
        from cryptography.hazmat.primitives import serialization

        from app.identity.verify import check_dates, read_certificates, read_roots, verify_chain

        now = self._wall_clock()
        given = read_certificates(cert_data, "the certificate")
        cert, intermediates = (
            given[0],
            given[1:] + (read_certificates(chain_data, "the chain") if chain_data.strip() else []),
        )
        owner = self._owner()
        with files.locked(self._ensure_root(owner), owner=owner):
            in_force = files.target(self.root / CURRENT)
            if in_force is not None and _same_cert(self.root / in_force / CERT, cert):
                _LOGGER.info("certificate already installed as %s; nothing changed", in_force)
                return self._files(in_force)
            source = self._matching_generation(cert)
            check_dates(cert, now)
            chain = verify_chain(cert, intermediates, read_roots(self.ca_file), now)
            tmp = self._new_tmp(owner)
            os.link(self.root / source / KEY, tmp / KEY)  # a second name, never a second copy
            if (self.root / source / CSR).exists():
                os.link(self.root / source / CSR, tmp / CSR)
            between = chain[1:-1]  # the root stays with the server, as TLS expects
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *between])
            files.write_new(tmp / CERT, pem, mode=files.PUBLIC, owner=owner)
            chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in between)
            files.write_new(tmp / CHAIN, chain_pem, mode=files.PUBLIC, owner=owner)
            name = self._publish(tmp)
            old = files.target(self.root / CURRENT)
            # `previous` is the last identity the server accepted: keep it while one is on trial
            if old is not None and files.target(self.root / PREVIOUS) is None:
                files.point(self.root / PREVIOUS, old, owner=owner)
            files.point(self.root / CURRENT, name, owner=owner)
            if files.target(self.root / PENDING) == source:
                files.unpoint(self.root / PENDING)
            self._collect()
        installed = self._files(name)
        _LOGGER.info(
            "installed certificate LFDI %s SFDI %d (%s) as %s; %s",
            installed.identity.lfdi,
            installed.identity.sfdi,
            installed.identity.subject,
            name,
            "previous identity kept until the server accepts it" if self.on_trial() else "first identity",
        )
        return installed

    def confirm_working(self, tried: IdentityFiles | None = None) -> bool:
        """The identity in force (`tried`, if given) has talked to the server: retire the previous one.

        Cheap when nothing is on trial, so the session may call it after every success. With
        `tried`, nothing happens if another install replaced that identity in the meantime.
        """
        if files.target(self.root / PREVIOUS) is None:
            return False
        with files.locked(self.root, owner=self._owner()):
            old = files.target(self.root / PREVIOUS)
            if old is None or (tried is not None and self.changed(tried)):
                return False
            files.unpoint(self.root / PREVIOUS)
            self._collect()
        _LOGGER.info("the server accepted identity %s; retired the previous one (%s)", self._name(), old)
        return True

    def fall_back(self, tried: IdentityFiles | None = None) -> bool:
        """The new identity (`tried`, if given) was refused: return to the previous one.

        The refused key stays pending, so a corrected certificate (or the same one, once the
        utility has registered its LFDI) can be installed without a new CSR. Returns False when
        there is nothing to fall back to: the first identity ever installed, or `tried` is no
        longer the one in force.
        """
        if files.target(self.root / PREVIOUS) is None:
            return False
        owner = self._owner()
        with files.locked(self.root, owner=owner):
            old = files.target(self.root / PREVIOUS)
            failed = files.target(self.root / CURRENT)
            if old is None or failed is None or (tried is not None and self.changed(tried)):
                return False
            files.point(self.root / CURRENT, old, owner=owner)
            files.unpoint(self.root / PREVIOUS)
            if files.target(self.root / PENDING) is None and failed != old:
                # its certificate was refused, not its key: a corrected certificate can still be installed
                files.point(self.root / PENDING, failed, owner=owner)
            self._collect()
        _LOGGER.warning(
            "the server refused the new certificate (%s); back on the previous identity (%s); "
            "the new key stays prepared for a corrected certificate",
            failed,
            old,
        )
        return True

    # --- inside ----------------------------------------------------------------------------------

    def _files(self, name: str) -> IdentityFiles:
        # the resolved generation folder, so a later switch cannot mix two identities' files
        folder = self.root / name
        try:
            identity = load_cert_identity(folder / CERT)
        except IdentityError as exc:
            raise NoIdentity(f"the installed identity {name} is unreadable: {exc}") from None
        return IdentityFiles(folder / CERT, folder / KEY, identity, name, name)

    def _name(self) -> str | None:
        return files.target(self.root / CURRENT)

    def _owner(self) -> files.Owner:
        parent = self.root.parent
        return files.service_owner(parent) if parent.exists() else None

    def _ensure_root(self, owner: files.Owner) -> Path:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        files.ensure_dir(self.root, owner=owner)
        return self.root

    def _new_tmp(self, owner: files.Owner) -> Path:
        tmp = self.root / f".new-{secrets.token_hex(4)}"
        files.make_dir(tmp, owner=owner)
        return tmp

    def _publish(self, tmp: Path) -> str:
        """Rename a fully written temporary folder to the next generation name."""
        files.fsync_dir(tmp)
        numbers = [int(n) for p in self.root.glob("gen-*") if (n := p.name.split("-")[1]).isdigit()]
        # the random tail keeps a name from ever coming back, which `changed()` relies on
        name = f"gen-{max(numbers, default=0) + 1:04d}-{secrets.token_hex(3)}"
        os.rename(tmp, self.root / name)
        files.fsync_dir(self.root)
        return name

    def _matching_generation(self, cert: x509.Certificate) -> str:
        """The generation whose key belongs to `cert`: the pending key first, then the one in force."""
        from cryptography.hazmat.primitives.asymmetric import ec

        from app.identity.verify import public_der

        want = public_der(cert)
        if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
            raise CertificateRefused("the certificate's key is not ECDSA P-256 (2030.5 §6.11); wrong file?")
        for link in (PENDING, CURRENT):
            name = files.target(self.root / link)
            if name is not None and _key_public(self.root / name / KEY) == want:
                return name
        raise CertificateRefused(
            "the certificate is for another key: it matches neither the key prepared by `identity init` "
            "nor the one in use (was the CSR from this box?)"
        )

    def _collect(self) -> None:
        """Delete generations and leftovers no link points to (retired keys, interrupted writes)."""
        keep = {files.target(self.root / link) for link in (CURRENT, PREVIOUS, PENDING)}
        for entry in self.root.iterdir():
            if entry.name.startswith((".new-", "gen-")) and entry.name not in keep:
                files.remove_tree(entry)
                _LOGGER.debug("removed unused identity folder %s", entry.name)


def _key_public(path: Path) -> bytes | None:
    """The public half of the private key file at `path`; its content never leaves this function."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.identity.verify import public_der

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return public_der(key.public_key())


def _same_cert(path: Path, cert: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(path.read_bytes()) == cert
    except (OSError, ValueError):
        return False


def _stamp(*paths: Path) -> object:
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root)) or Path(
        os.path.realpath(path)
    ).is_relative_to(os.path.realpath(root))
