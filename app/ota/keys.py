"""Ed25519 fleet keys and the box's trust store.

Trust store (JSON):
`{"serial": 3, "keys": {"fleet-2026": "<base64 raw public key>"}, "revoked": ["fleet-2025"]}`.
Several keys may be trusted at once, so a new key can be introduced before the old one is retired.
Rotation: a bundle signed with a currently trusted key may carry a new trust store; it replaces the
box's one only when the update is committed and only if its serial is higher (so an old statement
cannot be replayed to bring back a revoked key), and never by more than MAX_SERIAL_STEP at once
(a statement with a huge serial would make every later real rotation look old).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.ota.errors import OtaError, SignatureError, UnknownKeyError
from app.ota.jsonfile import write_json

#: serials are whole numbers from 0 up to this; a rotation raises the serial by 1 to MAX_SERIAL_STEP
MAX_SERIAL = 1_000_000
MAX_SERIAL_STEP = 100
MAX_TRUST_BYTES = 1 << 16
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TrustStoreError(OtaError):
    """The trust store file is missing or malformed: reinstall it (no update can be verified without it)."""


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: the form kept in the trust store."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The fleet keys this box accepts, by key id."""

    serial: int = 0
    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if type(self.serial) is not int or not 0 <= self.serial <= MAX_SERIAL:
            raise TrustStoreError(f"serial {self.serial!r} is not a whole number from 0 to {MAX_SERIAL}")
        bad = [k for k in (*self.keys, *self.revoked) if not isinstance(k, str) or not _KEY_ID.match(k)]
        if bad:
            raise TrustStoreError(f"key id {bad[0]!r} is not 1-64 letters, digits, '.', '_' or '-'")

    def verify(self, key_id: str, signature_b64: str, data: bytes) -> None:
        """Raise UnknownKeyError or SignatureError unless `signature_b64` is `key_id`'s signature."""
        if key_id in self.revoked:
            raise UnknownKeyError(f"signed with revoked key {key_id!r}")
        key = self.keys.get(key_id)
        if key is None:
            known = ", ".join(sorted(self.keys)) or "none"
            raise UnknownKeyError(f"signed with unknown key {key_id!r} (trusted: {known})")
        try:
            key.verify(base64.b64decode(signature_b64, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureError(f"signature does not verify with key {key_id!r}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "serial": self.serial,
            "keys": {kid: public_key_b64(k) for kid, k in sorted(self.keys.items())},
            "revoked": sorted(self.revoked),
        }

    def save(self, path: Path) -> None:
        """Write atomically."""
        write_json(path, self.to_json())


def parse_trust_store(data: bytes, where: str = "trust store") -> TrustStore:
    """Parse and check the JSON form: a serial in range, at least one valid key left after revocations."""
    try:
        if len(data) > MAX_TRUST_BYTES:
            raise ValueError(f"larger than {MAX_TRUST_BYTES} bytes")
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict):
            raise TypeError('expected {"serial", "keys": {id: base64}, "revoked": [id]}')
        keys = {kid: _public_key(b64) for kid, b64 in raw["keys"].items()}
        revoked_list = raw.get("revoked", [])
        if not isinstance(revoked_list, list):
            raise TypeError("revoked must be a list of key ids")
        store = TrustStore(raw.get("serial", 0), {}, frozenset(revoked_list))
        store = TrustStore(
            store.serial, {k: v for k, v in keys.items() if k not in store.revoked}, store.revoked
        )
        if not store.keys:
            raise ValueError("it trusts no key (every bundle would be refused for good)")
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, TrustStoreError) as exc:
        raise TrustStoreError(f"{where}: malformed ({exc})") from None
    return store


def _public_key(b64: object) -> Ed25519PublicKey:
    if not isinstance(b64, str):
        raise TypeError(f"a key must be base64 text, got {b64!r}")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))


def check_rotation(old: TrustStore | None, new: TrustStore, where: str = "trust statement") -> bool:
    """Whether `new` replaces `old` (a higher serial); TrustStoreError when it jumps too far.

    `old` None is a box whose own store is lost or damaged: a verified statement restores it.
    """
    if old is None:
        return True
    if new.serial <= old.serial:
        return False
    if new.serial - old.serial > MAX_SERIAL_STEP:
        raise TrustStoreError(
            f"{where}: serial {new.serial} jumps more than {MAX_SERIAL_STEP} past ours ({old.serial})"
        )
    return True


def load_trust_store(path: Path) -> TrustStore:
    """Read the box's trust store."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TRUST_BYTES + 1)
    except OSError as exc:
        raise TrustStoreError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_trust_store(data, str(path))
