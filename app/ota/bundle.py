"""Update bundles: a tar of wheels plus a signed manifest listing every file's size and SHA-256.

Members: `manifest.json` (the signed bytes), `manifest.sig` (base64 Ed25519 signature of them),
`wheels/*.whl` (the gateway and every dependency, so installation needs no index) and optionally
`trust.json` (a key-rotation statement, see keys.py). The signature is checked before anything
is unpacked, and nothing is unpacked that the manifest does not list with a matching hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ota.errors import BundleRejected, InstallFailed, IntegrityError
from app.ota.keys import TrustStore, sign
from app.ota.version import Version

FORMAT = 1
PRODUCT = "wattsmart-gateway"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
TRUST = "trust.json"
_MAX_MANIFEST = 1 << 20
_MEMBER = re.compile(r"^(wheels/[A-Za-z0-9][A-Za-z0-9._+-]*\.whl|trust\.json)$")
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class FileEntry:
    """Size and SHA-256 (hex) of one bundled file."""

    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BundleManifest:
    """The verified contents of a bundle's manifest."""

    version: Version
    min_version: Version | None
    key_id: str
    requirement: str
    created: str
    files: Mapping[str, FileEntry]
    #: SHA-256 of the signed manifest bytes: identifies the bundle (same version, other build ⇒ differs)
    digest: str

    @property
    def has_trust_statement(self) -> bool:
        """Whether the bundle carries a key-rotation statement."""
        return TRUST in self.files


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def build_bundle(
    out: Path,
    wheels: Sequence[Path],
    *,
    version: str,
    min_version: str | None,
    key: Ed25519PrivateKey,
    key_id: str,
    requirement: str | None = None,
    trust_statement: Path | None = None,
    created: datetime | None = None,
) -> BundleManifest:
    """Write a signed bundle to `out` (reproducible: fixed order, times and owners)."""
    Version(version)  # refuse a malformed version at build time, not on the boxes
    if min_version is not None:
        Version(min_version)
    sources = {f"wheels/{w.name}": w for w in sorted(wheels, key=lambda p: p.name)}
    if trust_statement is not None:
        sources[TRUST] = trust_statement
    for name in sources:
        if not _MEMBER.match(name):
            raise ValueError(f"cannot bundle {name!r}: only wheels (*.whl) and a trust statement")
    files = {name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for name, p in sources.items()}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "product": PRODUCT,
        "version": version,
        "min_version": min_version,
        "key_id": key_id,
        "requirement": requirement or f"{PRODUCT}=={version}",
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "files": files,
    }
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    signature = sign(key, body).encode()
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, body)
        _add_bytes(tar, SIGNATURE, signature)
        for name, path in sources.items():
            with path.open("rb") as f:
                tar.addfile(_info(name, path.stat().st_size), f)
    tmp.replace(out)
    return _parse_manifest(body)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def verify_bundle(path: Path, trust: TrustStore) -> BundleManifest:
    """Check the bundle's signature against the trust store; returns its manifest. Unpacks nothing."""
    try:
        with tarfile.open(path, "r:") as tar:
            body = _read_member(tar, MANIFEST)
            signature = _read_member(tar, SIGNATURE).decode("ascii", "replace").strip()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntegrityError(f"{path.name}: not a readable bundle ({exc})") from None
    try:
        key_id = str(json.loads(body)["key_id"])
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path.name}: manifest has no key_id") from None
    trust.verify(key_id, signature, body)
    return _parse_manifest(body)


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise IntegrityError(f"bundle has no {name}") from None
    if not info.isfile() or info.size > _MAX_MANIFEST:
        raise IntegrityError(f"bundle member {name} is not a small regular file")
    f = tar.extractfile(info)
    assert f is not None  # a regular file always has data
    return f.read()


def _parse_manifest(body: bytes) -> BundleManifest:
    try:
        raw = json.loads(body)
        if raw["format"] != FORMAT or raw["product"] != PRODUCT:
            raise BundleRejected(f"not a {PRODUCT} bundle of format {FORMAT}")
        files = {str(n): FileEntry(int(e["size"]), str(e["sha256"])) for n, e in raw["files"].items()}
        min_version = Version(raw["min_version"]) if raw.get("min_version") else None
        manifest = BundleManifest(
            version=Version(str(raw["version"])),
            min_version=min_version,
            key_id=str(raw["key_id"]),
            requirement=str(raw["requirement"]),
            created=str(raw.get("created", "")),
            files=files,
            digest=hashlib.sha256(body).hexdigest(),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleRejected(f"signed manifest is malformed ({exc!r})") from None
    bad = [n for n in files if not _MEMBER.match(n)]
    if bad:
        raise BundleRejected(f"signed manifest lists a forbidden file name {bad[0]!r}")
    return manifest


def extract_bundle(path: Path, manifest: BundleManifest, dest: Path) -> None:
    """Unpack the listed files into `dest`, checking each one's size and hash; anything else is refused."""
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if info.name in (MANIFEST, SIGNATURE):
                    continue
                entry = manifest.files.get(info.name)
                if entry is None or not info.isfile() or info.name in seen:
                    raise IntegrityError(f"bundle holds {info.name!r}, not in the signed manifest")
                if info.size != entry.size:  # refuse before writing: a huge member could fill the disk
                    raise IntegrityError(f"{info.name}: size differs from the signed manifest")
                f = tar.extractfile(info)
                assert f is not None
                _copy_checked(f, dest / info.name, info.name, entry)
                seen.add(info.name)
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"{path.name}: damaged bundle ({exc})") from None
    except OSError as exc:
        raise InstallFailed(f"cannot unpack into {dest}: {exc.strerror or exc}") from None
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise IntegrityError(f"bundle lacks {missing[0]!r}, which the signed manifest lists")


def _copy_checked(src: IO[bytes], target: Path, name: str, entry: FileEntry) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry.size or h.hexdigest() != entry.sha256:
        target.unlink()
        raise IntegrityError(f"{name}: size or SHA-256 differs from the signed manifest")


def read_manifest_json(manifest: BundleManifest) -> dict[str, Any]:
    """A summary for the release folder and for reports."""
    return {
        "version": str(manifest.version),
        "min_version": str(manifest.min_version) if manifest.min_version else None,
        "key_id": manifest.key_id,
        "digest": manifest.digest,
        "created": manifest.created,
    }
