"""Update bundles: a tar of wheels plus a signed manifest listing every file's size and SHA-256.

Members: `manifest.json` (the signed bytes), `manifest.sig` (base64 Ed25519 signature of them),
`wheels/*.whl` (the gateway and every dependency, so installation needs no index) and optionally
`trust.json` (a key-rotation statement, see keys.py). Before anything else the tar headers are
walked with hard limits (every header and member size, member count, only plain files), then the
small manifest and signature are read and verified; nothing is unpacked that the manifest does not
list with a matching hash. The manifest's version must be the gateway wheel's own metadata version.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from app.ota.errors import BundleRejected, InstallFailed, IntegrityError
from app.ota.keys import TrustStore
from app.ota.version import Version

FORMAT = 1
PRODUCT = "wattsmart-gateway"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
TRUST = "trust.json"
#: hard limits, checked on the tar headers before any member is read
MAX_MANIFEST = 1 << 20
MAX_SIGNATURE = 1 << 10
MAX_EXTENDED_HEADER = 1 << 16
MAX_MEMBERS = 1024
#: the gateway wheel's METADATA is read (from a hash-checked wheel) only up to this size
MAX_METADATA = 1 << 20
#: the names a bundle may hold besides its manifest and signature
MEMBER = re.compile(r"^(wheels/[A-Za-z0-9][A-Za-z0-9._+-]*\.whl|trust\.json)$")
_PRODUCT_WHEEL = re.compile(r"^wheels/wattsmart_gateway-[^-/]+-[^/]*\.whl$")
_PAX_KEYS = frozenset({"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"})
_BLOCK = 512
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
    #: anti-rollback: once this bundle is committed, no release below this version installs here again
    security_floor: Version | None = None

    @property
    def has_trust_statement(self) -> bool:
        """Whether the bundle carries a key-rotation statement."""
        return TRUST in self.files

    @property
    def gateway_wheel(self) -> str:
        """The member holding the gateway's own wheel (exactly one, checked when parsed)."""
        return find_gateway_wheel(self.files)


@dataclass(frozen=True, slots=True)
class _Member:
    """Where one tar member's data lies in the file."""

    offset: int
    size: int


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def wheel_version(wheel: Path) -> str:
    """The `Version:` in a wattsmart-gateway wheel's METADATA: the version pip installs (and the code's)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            found = [i for i in z.infolist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", i.filename)]
            if len(found) != 1:
                raise BundleRejected(f"{wheel.name}: not one .dist-info/METADATA in the wheel")
            if found[0].file_size > MAX_METADATA:
                raise BundleRejected(f"{wheel.name}: METADATA is larger than {MAX_METADATA} bytes")
            with z.open(found[0]) as f:
                data = f.read(MAX_METADATA + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise BundleRejected(f"{wheel.name}: not a readable wheel ({exc})") from None
    headers: dict[str, str] = {}
    for line in data[:MAX_METADATA].decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the body (long description) follows the first blank line
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            headers.setdefault(key, value.strip())
    if canonicalize_name(headers.get("Name", "")) != PRODUCT or "Version" not in headers:
        raise BundleRejected(f"{wheel.name}: METADATA does not name {PRODUCT} and its version")
    return headers["Version"]


def code_version(wheel: Path) -> str | None:
    """The `__version__` in the wheel's app/__init__.py (what `wattsmart-gateway --version` says), or None."""
    try:
        with zipfile.ZipFile(wheel) as z, z.open("app/__init__.py") as f:
            text = f.read(MAX_METADATA).decode("utf-8", "replace")
    except KeyError:
        return None  # not the gateway's own layout (test wheels): the metadata check stands alone
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleRejected(f"{wheel.name}: not a readable wheel ({exc})") from None
    match = re.search(r'^__version__ = "([^"]*)"$', text, re.M)
    return match.group(1) if match else ""


def find_gateway_wheel(names: Mapping[str, object] | Sequence[str]) -> str:
    """The one member (of `names`) that is the gateway's own wheel; BundleRejected unless exactly one."""
    found = [n for n in names if _PRODUCT_WHEEL.match(n)]
    if len(found) != 1:
        raise BundleRejected(f"a bundle holds exactly one {PRODUCT} wheel (found {len(found)})")
    return found[0]


def check_requirement(requirement: str, version: Version) -> None:
    """What pip installs must be the gateway at exactly the bundle's version (extras allowed)."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        raise BundleRejected(f"requirement {requirement!r} is not a PEP 508 requirement") from None
    if (
        canonicalize_name(req.name) != PRODUCT
        or req.url
        or req.marker
        or str(req.specifier) != f"=={version}"
    ):
        raise BundleRejected(f"requirement {requirement!r} is not {PRODUCT}=={version}")


def verify_bundle(path: Path, trust: TrustStore) -> BundleManifest:
    """Check the bundle's signature against the trust store; returns its manifest. Unpacks nothing.

    Reads only tar headers (each bounded) and the two small signed members, whatever the file holds.
    """
    try:
        with path.open("rb") as f:
            members = scan_members(f)
            body = _read_small(f, members, MANIFEST, MAX_MANIFEST)
            signature = _read_small(f, members, SIGNATURE, MAX_SIGNATURE).decode("ascii", "replace").strip()
    except OSError as exc:
        raise IntegrityError(f"{path.name}: not a readable bundle ({exc.strerror or exc})") from None
    try:
        key_id = json.loads(body)["key_id"]
        if not isinstance(key_id, str):
            raise TypeError(key_id)
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path.name}: manifest has no key_id") from None
    trust.verify(key_id, signature, body)
    return parse_bundle_manifest(body)


def scan_members(f: IO[bytes]) -> dict[str, _Member]:
    """Walk a tar's headers with hard limits, reading no member data; only plain files are allowed.

    Refused: an extended (PAX) header over MAX_EXTENDED_HEADER or with keys beyond the plain ones,
    any entry but a regular file (links, devices, folders, GNU long names, sparse files), a
    duplicate name, more than MAX_MEMBERS members, a size running past the end of the file.
    """
    total = f.seek(0, io.SEEK_END)
    members: dict[str, _Member] = {}
    pax: dict[str, str] = {}
    pos = 0
    while True:
        f.seek(pos)
        block = f.read(_BLOCK)
        if len(block) < _BLOCK:
            raise IntegrityError("damaged bundle: a tar header is cut short")
        if block == bytes(_BLOCK):
            return members  # end-of-archive marker
        _check_header_sum(block)
        kind, size, data_at = block[156:157], _octal(block[124:136]), pos + _BLOCK
        if kind == b"x":
            if size > MAX_EXTENDED_HEADER:
                raise IntegrityError(
                    f"bundle has a {size}-byte extended header (limit {MAX_EXTENDED_HEADER})"
                )
            pax = _pax_records(f.read(size))
        elif kind in (b"0", b"\0"):
            name = pax.get("path") or _tar_name(block)
            if "size" in pax:
                size = _number(pax["size"])
            if name in members:
                raise IntegrityError(f"bundle holds {name!r} twice")
            if len(members) >= MAX_MEMBERS:
                raise IntegrityError(f"bundle holds more than {MAX_MEMBERS} files")
            members[name] = _Member(data_at, size)
            pax = {}
        else:
            raise IntegrityError(f"bundle holds a tar entry of type {kind!r}: only plain files are allowed")
        if data_at + size > total:
            raise IntegrityError("damaged bundle: a member runs past the end of the file")
        pos = data_at + -(-size // _BLOCK) * _BLOCK


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise IntegrityError("bundle has a tar number in base-256 (a member of 8 GiB or more)")
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise IntegrityError("damaged bundle: a tar header number is not octal") from None


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise IntegrityError(f"bundle has an extended header with size {text[:20]!r}")
    return int(text)


def _check_header_sum(block: bytes) -> None:
    stored = _octal(block[148:156])
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b & 0x80)
    if stored not in (unsigned, signed):
        raise IntegrityError("damaged bundle: a tar header checksum does not match")


def _tar_name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
    full = prefix + b"/" + name if prefix else name
    return full.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """Parse `<length> <key>=<value>\\n` records; only plain keys (no sparse files, no charsets)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        length_text, space, _ = data[pos : pos + 21].partition(b" ")
        if not space or not length_text.isdigit():
            raise IntegrityError("damaged bundle: a malformed extended header")
        end = pos + int(length_text)
        record = data[pos + len(length_text) + 1 : end]
        if end > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise IntegrityError("damaged bundle: a malformed extended header")
        key, _, value = record[:-1].partition(b"=")
        name = key.decode("utf-8", "replace")
        if name not in _PAX_KEYS:
            raise IntegrityError(f"bundle has an extended header key {name!r}: only plain files are allowed")
        records[name] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records


def _read_small(f: IO[bytes], members: Mapping[str, _Member], name: str, limit: int) -> bytes:
    member = members.get(name)
    if member is None:
        raise IntegrityError(f"bundle has no {name}")
    if member.size > limit:
        raise IntegrityError(f"bundle member {name} is {member.size} bytes (limit {limit})")
    f.seek(member.offset)
    return f.read(member.size)


def parse_bundle_manifest(body: bytes) -> BundleManifest:
    """The bundle manifest from its signed bytes; BundleRejected for anything a box would not install."""
    try:
        raw = json.loads(body)
        if raw["format"] != FORMAT or raw["product"] != PRODUCT:
            raise BundleRejected(f"not a {PRODUCT} bundle of format {FORMAT}")
        files = {str(n): _entry(e) for n, e in raw["files"].items()}
        min_version = Version(raw["min_version"]) if raw.get("min_version") else None
        floor = Version(raw["security_floor"]) if raw.get("security_floor") else None
        manifest = BundleManifest(
            version=Version(raw["version"]),
            min_version=min_version,
            key_id=str(raw["key_id"]),
            requirement=str(raw["requirement"]),
            created=str(raw.get("created", "")),
            files=files,
            digest=hashlib.sha256(body).hexdigest(),
            security_floor=floor,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleRejected(f"signed manifest is malformed ({exc!r})") from None
    bad = [n for n in files if not MEMBER.match(n)]
    if bad:
        raise BundleRejected(f"signed manifest lists a forbidden file name {bad[0]!r}")
    if floor is not None and floor > manifest.version:
        raise BundleRejected(f"signed manifest's security floor {floor} is above its version")
    find_gateway_wheel(files)
    check_requirement(manifest.requirement, manifest.version)
    return manifest


def _entry(raw: Any) -> FileEntry:
    size, digest = raw["size"], raw["sha256"]
    if (
        type(size) is not int
        or size < 0
        or not isinstance(digest, str)
        or not re.fullmatch("[0-9a-f]{64}", digest)
    ):
        raise ValueError(f"file entry {raw!r}")
    return FileEntry(size, digest)


def extract_bundle(path: Path, manifest: BundleManifest, dest: Path) -> None:
    """Unpack the listed files into `dest`, checking each one's size and hash; anything else is refused.

    Last, the gateway wheel's own metadata version must be the signed manifest's version.
    """
    seen: set[str] = set()
    try:
        with path.open("rb") as raw:
            scan_members(raw)  # the same limits as verify_bundle, in case the file changed since
            raw.seek(0)
            with tarfile.open(fileobj=raw, mode="r:") as tar:
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
    found = wheel_version(dest / manifest.gateway_wheel)
    if found != str(manifest.version):
        raise BundleRejected(
            f"the signed manifest says {manifest.version} but the gateway wheel is {found}: refused"
        )


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
        "security_floor": str(manifest.security_floor) if manifest.security_floor else None,
        "key_id": manifest.key_id,
        "digest": manifest.digest,
        "created": manifest.created,
    }
