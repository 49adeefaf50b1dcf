"""HTTP for the fleet side: fetch the manifest, download a bundle with resume, post an outcome."""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from app.ota.errors import DownloadError, IntegrityError

_LOGGER = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 16
#: a download never leaves less than this free: the gateway's store lives on the same partition (its
#: outbox of a week's readings is a few MB, its quarantine at most 16 MiB, its WAL 256 KiB)
RESERVE_BYTES = 32 << 20


class NoSpace(DownloadError):
    """Not enough free space for the bundle and the reserve; the partial file has been removed."""


def check_space(folder: Path, needed: int, reserve: int = RESERVE_BYTES) -> None:
    """Raise NoSpace unless `needed` bytes fit in `folder`'s file system with `reserve` left over."""
    free = shutil.disk_usage(folder).free
    if free - needed < reserve:
        raise NoSpace(f"{needed} bytes to download but {free} free in {folder}, and {reserve} must stay free")


async def fetch_bytes(session: aiohttp.ClientSession, url: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """GET a small document; refuse one over `limit` bytes."""
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise DownloadError(f"GET {url}: HTTP {resp.status}")
            data = await resp.content.read(limit + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError(f"GET {url}: {exc!r}") from None
    if len(data) > limit:
        raise DownloadError(f"GET {url}: larger than {limit} bytes")
    return data


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    size: int,
    sha256: str,
    attempts: int = 3,
    reserve: int = RESERVE_BYTES,
) -> Path:
    """Download to `dest`, resuming `dest.part` with an HTTP Range request; check size and SHA-256.

    Checks first that the rest of the bundle fits with `reserve` bytes left free; a full disk
    (ENOSPC) on the way removes the partial file and raises NoSpace.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            _discard(part)
            have = 0
        try:
            if have < size:
                check_space(part.parent, size - have, reserve)
                await _fetch_into(session, url, part, have, size)
            break
        except NoSpace:
            _discard(part)
            raise
        except (aiohttp.ClientError, TimeoutError, DownloadError) as exc:
            last = exc
            _LOGGER.warning("download of %s interrupted at %d bytes: %r", url, _size(part), exc)
    else:
        raise DownloadError(f"download of {url} failed: {last!r}")
    if _size(part) != size or _sha256(part) != sha256:
        _discard(part)  # a corrupted file cannot be resumed: start afresh next time
        raise IntegrityError(f"{url}: downloaded file does not match the manifest's size and SHA-256")
    part.replace(dest)
    return dest


async def _fetch_into(session: aiohttp.ClientSession, url: str, part: Path, have: int, size: int) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with session.get(url, headers=headers) as resp:
        if resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            mode = "ab"
            _LOGGER.info("resuming %s at %d of %d bytes", url, have, size)
        elif resp.status == 200:
            mode, have = "wb", 0  # the host ignores Range: start over
        elif resp.status == 416:
            _discard(part)
            raise DownloadError(f"GET {url}: range {have}- not satisfiable; starting over")
        else:
            raise DownloadError(f"GET {url}: HTTP {resp.status}")
        try:
            with part.open(mode) as f:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    have += len(chunk)
                    if have > size:
                        raise DownloadError(f"GET {url}: more than the {size} bytes the manifest states")
                    f.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise NoSpace(f"{part.parent}: disk full at {have} of {size} bytes") from None
    if have < size:
        raise DownloadError(f"GET {url}: connection closed at {have} of {size} bytes")


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


async def post_report(session: aiohttp.ClientSession, url: str, report: dict[str, Any]) -> bool:
    """POST an outcome; False (logged) when the endpoint cannot take it now."""
    try:
        async with session.post(url, json=report) as resp:
            if 200 <= resp.status < 300:
                return True
            _LOGGER.warning("fleet report to %s: HTTP %d", url, resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        _LOGGER.warning("fleet report to %s failed: %r", url, exc)
    return False
