"""The fleet's signing: keys, signed update bundles and signed fleet manifests.

Only here, on the operator's workstation: a box verifies (app.ota.keys, app.ota.bundle,
app.ota.fleet) and never holds a private key or code that makes a signature. The formats, limits
and checks are the box's own, imported from app.ota, so the tool refuses what a box would refuse.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ota.bundle import (
    FORMAT,
    MANIFEST,
    MAX_MANIFEST,
    MEMBER,
    PRODUCT,
    SIGNATURE,
    TRUST,
    BundleManifest,
    check_requirement,
    code_version,
    find_gateway_wheel,
    parse_bundle_manifest,
    sha256_file,
    wheel_version,
)
from app.ota.errors import BundleRejected
from app.ota.keys import TrustStoreError, parse_trust_store
from app.ota.version import Version


def generate_key() -> Ed25519PrivateKey:
    """A new fleet signing key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (keep it offline or in an HSM-backed store)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PKCS#8 PEM Ed25519 private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """Sign `data`; the signature as base64."""
    return base64.b64encode(key.sign(data)).decode()


def sign_manifest(payload: dict[str, Any], key: Ed25519PrivateKey, key_id: str) -> bytes:
    """The fleet manifest's signed envelope for `payload` (app.ota.fleet parses and checks it)."""
    text = json.dumps(payload, indent=1, sort_keys=True)
    envelope = {"key_id": key_id, "signature": sign(key, text.encode()), "payload": text}
    return (json.dumps(envelope, indent=1) + "\n").encode()


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
    security_floor: str | None = None,
    created: datetime | None = None,
) -> BundleManifest:
    """Write a signed bundle to `out` (reproducible: fixed order, times and owners).

    Refuses (ValueError) what the boxes would refuse: a malformed version, one that is not the
    gateway wheel's own, a floor above the version, a trust statement the boxes would not adopt.
    """
    try:
        parsed = Version(version)
        if min_version is not None:
            Version(min_version)
        if security_floor is not None and Version(security_floor) > parsed:
            raise ValueError(f"security floor {security_floor} is above the release's own version {version}")
        sources = {f"wheels/{w.name}": w for w in sorted(wheels, key=lambda p: p.name)}
        gateway = sources[find_gateway_wheel(sources)]
        if (found := wheel_version(gateway)) != version:
            raise ValueError(
                f"{gateway.name} is version {found}, not {version}: the version must be the code's"
            )
        if (said := code_version(gateway)) not in (None, version):
            # the box checks `wattsmart-gateway --version` before switching: refuse here, not on every box
            raise ValueError(f"{gateway.name}: app/__init__.py says __version__ = {said!r}, not {version!r}")
        check_requirement(requirement or f"{PRODUCT}=={version}", parsed)
        if trust_statement is not None:
            parse_trust_store(trust_statement.read_bytes(), str(trust_statement))
            sources[TRUST] = trust_statement
    except (BundleRejected, TrustStoreError) as exc:
        raise ValueError(str(exc)) from None
    for name in sources:
        if not MEMBER.match(name):
            raise ValueError(f"cannot bundle {name!r}: only wheels (*.whl) and a trust statement")
    files = {name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for name, p in sources.items()}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "product": PRODUCT,
        "version": version,
        "min_version": min_version,
        "security_floor": security_floor,
        "key_id": key_id,
        "requirement": requirement or f"{PRODUCT}=={version}",
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "files": files,
    }
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    if len(body) > MAX_MANIFEST:
        raise ValueError(f"the manifest would be {len(body)} bytes, over the boxes' limit of {MAX_MANIFEST}")
    signature = sign(key, body).encode()
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, body)
        _add_bytes(tar, SIGNATURE, signature)
        for name, path in sources.items():
            with path.open("rb") as f:
                tar.addfile(_info(name, path.stat().st_size), f)
    tmp.replace(out)
    return parse_bundle_manifest(body)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))
