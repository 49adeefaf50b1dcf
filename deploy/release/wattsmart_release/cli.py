"""The fleet's release tool: `python -m wattsmart_release keygen|trust|bundle|manifest`.

    python -m wattsmart_release keygen --key-id fleet-2026 --out keys/
    python -m wattsmart_release trust --serial 1 --key keys/fleet-2026.pub --out ota-trust.json
    python -m wattsmart_release bundle --key keys/fleet-2026.key --out gw-1.5.0.bundle dist/*.whl
    python -m wattsmart_release manifest --key keys/fleet-2026.key --bundle gw-1.5.0.bundle \\
        --url bundles/gw-1.5.0.bundle --stage 5@2026-12-01T00:00:00+00:00 \\
        --stage 100@2026-12-03T00:00:00+00:00 --base manifest.json --out manifest.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.ota.bundle import PRODUCT, sha256_file, verify_bundle, wheel_version
from app.ota.errors import BundleRejected, OtaError
from app.ota.fleet import FORMAT
from app.ota.keys import TrustStore, parse_trust_store, public_key_b64
from wattsmart_release.signing import (
    build_bundle,
    generate_key,
    load_private_key,
    private_key_pem,
    sign_manifest,
)

_WHEEL = re.compile(r"^wattsmart_gateway-([^-]+)-")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (OSError, ValueError, OtaError) as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wattsmart_release", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = sub.add_parser("keygen", help="make a new fleet signing key pair")
    keygen.add_argument("--key-id", required=True, help="the name boxes know the key by, e.g. fleet-2026")
    keygen.add_argument("--out", type=Path, required=True, help="folder for <id>.key and <id>.pub")
    keygen.set_defaults(func=_keygen)

    trust = sub.add_parser("trust", help="write a trust store / key-rotation statement")
    trust.add_argument("--serial", type=int, required=True, help="must exceed the boxes' current serial")
    trust.add_argument("--key", type=Path, action="append", default=[], help="<id>.pub to trust")
    trust.add_argument("--revoke", action="append", default=[], help="key id to revoke")
    trust.add_argument("--out", type=Path, required=True)
    trust.set_defaults(func=_trust)

    bundle = sub.add_parser("bundle", help="build and sign an update bundle from wheels")
    bundle.add_argument("wheels", type=Path, nargs="+", help="wheel files or folders of wheels")
    bundle.add_argument("--key", type=Path, required=True, help="<id>.key (the key id is its name)")
    bundle.add_argument("--key-id", help="override the key id")
    bundle.add_argument(
        "--version", help="default: the wattsmart_gateway wheel's metadata version (must match)"
    )
    bundle.add_argument("--min-version", help="boxes older than this refuse the bundle")
    bundle.add_argument("--requirement", help=f"what pip installs (default {PRODUCT}==VERSION)")
    bundle.add_argument("--trust", type=Path, help="a key-rotation statement to ship (see `trust`)")
    bundle.add_argument(
        "--security-floor",
        help="anti-rollback: once this bundle is committed, the box refuses every release below this version",
    )
    bundle.add_argument("--out", type=Path, required=True)
    bundle.set_defaults(func=_bundle)

    manifest = sub.add_parser("manifest", help="add a bundle to a signed fleet manifest")
    manifest.add_argument("--key", type=Path, required=True)
    manifest.add_argument("--key-id")
    manifest.add_argument("--bundle", type=Path, required=True)
    manifest.add_argument("--url", required=True, help="where boxes fetch it (relative to the manifest)")
    manifest.add_argument(
        "--stage", action="append", default=[], help="PERCENT@ISO-TIME, e.g. 5@2026-12-01T00:00:00+00:00"
    )
    manifest.add_argument("--base", type=Path, help="the manifest published now (its releases are kept)")
    manifest.add_argument("--serial", type=int, help="default: the base's serial + 1")
    manifest.add_argument(
        "--valid-for-days",
        type=float,
        default=30.0,
        help="boxes refuse the manifest this long after publication (not_after; default 30): re-sign before",
    )
    manifest.add_argument("--out", type=Path, required=True)
    manifest.set_defaults(func=_manifest)
    return parser


def _keygen(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    private = args.out / f"{args.key_id}.key"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    public = public_key_b64(key.public_key())
    (args.out / f"{args.key_id}.pub").write_text(public + "\n")
    print(f"{private} (keep offline)\n{args.out / f'{args.key_id}.pub'}: {public}")
    return 0


def _public(path: Path) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(path.read_text().strip(), validate=True))


def _trust(args: argparse.Namespace) -> int:
    keys = {p.stem: _public(p) for p in args.key}
    store = TrustStore(args.serial, keys, frozenset(args.revoke))
    # the boxes' own check: a statement they would refuse is never written
    parse_trust_store(json.dumps(store.to_json()).encode(), "the new trust store")
    store.save(args.out)
    print(f"{args.out}: serial {args.serial}, trusts {', '.join(sorted(keys)) or 'nothing'}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    wheels: list[Path] = []
    for item in args.wheels:
        wheels += sorted(item.glob("*.whl")) if item.is_dir() else [item]
    version = args.version or _version_from_wheels(wheels)
    key = load_private_key(args.key)
    manifest = build_bundle(
        args.out,
        wheels,
        version=version,
        min_version=args.min_version,
        key=key,
        key_id=args.key_id or args.key.stem,
        requirement=args.requirement,
        trust_statement=args.trust,
        security_floor=args.security_floor,
    )
    print(f"{args.out}: {PRODUCT} {manifest.version}, {len(manifest.files)} files, key {manifest.key_id}")
    return 0


def _version_from_wheels(wheels: list[Path]) -> str:
    for wheel in wheels:
        if _WHEEL.match(wheel.name):
            try:
                return wheel_version(wheel)
            except BundleRejected as exc:
                raise ValueError(str(exc)) from None
    raise ValueError("no wattsmart_gateway wheel among the inputs; give --version")


def _manifest(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    key_id = args.key_id or args.key.stem
    # read the bundle back through the boxes' own check, with the signing key as the only trusted one
    info = verify_bundle(args.bundle, TrustStore(0, {key_id: key.public_key()}))
    base: dict[str, Any] = json.loads(json.loads(args.base.read_text())["payload"]) if args.base else {}
    serial = args.serial if args.serial is not None else int(base.get("serial", 0)) + 1
    stages = [_stage(s) for s in args.stage]
    entry = {
        "version": str(info.version),
        "min_version": str(info.min_version) if info.min_version else None,
        "url": args.url,
        "sha256": sha256_file(args.bundle),
        "size": args.bundle.stat().st_size,
        "stages": stages,
    }
    releases = [r for r in base.get("releases", []) if r.get("version") != entry["version"]] + [entry]
    if not 0 < args.valid_for_days <= 366:
        raise ValueError(f"--valid-for-days {args.valid_for_days}: expected more than 0, at most 366")
    published = datetime.now(UTC)
    payload = {
        "format": FORMAT,
        "product": PRODUCT,
        "serial": serial,
        "published": published.isoformat(timespec="seconds"),
        "not_after": (published + timedelta(days=args.valid_for_days)).isoformat(timespec="seconds"),
        "releases": releases,
    }
    args.out.write_bytes(sign_manifest(payload, key, key_id))
    print(f"{args.out}: serial {serial}, {len(releases)} releases")
    return 0


def _stage(text: str) -> dict[str, Any]:
    percent, _, start = text.partition("@")
    when = datetime.fromisoformat(start)
    if when.tzinfo is None or not 0 <= int(percent) <= 100:
        raise ValueError(f"stage {text!r}: expected PERCENT@ISO-TIME with a timezone, percent 0..100")
    return {"percent": int(percent), "start": when.isoformat()}


if __name__ == "__main__":
    sys.exit(main())
