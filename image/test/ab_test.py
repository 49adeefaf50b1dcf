"""`make image-test-ab`: OS A/B updates with RAUC under qemu-system-aarch64 -M virt, both ways.

Two runs, each from a fresh copy of the image from `make image` (booted as `make image-test` does,
kernel and initrd from the image's tree, whose initramfs holds the slot selector):

- **good**: slot A boots, installs the bundle of `make os-bundle` into slot B with the gateway's own
  CLI, reboots into B; B's OS update unit watches the gateway to READY and healthy, commits
  (`rauc status mark-good`) and reports;
- **bad**: the same, with a bundle whose gateway never reaches READY (the same root file system
  plus a drop-in that replaces the gateway's ExecStart with `sleep infinity`, signed with the same
  key): B's trial times out, B is marked bad, the box reboots, the initramfs boots A, and A
  finishes the rollback and reports it.

Both check the outbox rows on the shared data partition across the switches. qemu runs with
-no-reboot, so each boot is one qemu run: before each, the test files are added with debugfs to
every root slot that holds a system (the product carries no test code). Console logs and
result.json in image/out/test-ab/. Standard library only; run as root.
"""

# ruff: noqa: S603, S607  (fixed host tools: debugfs, mke2fs, cp, rauc, qemu)

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import boot_test  # noqa: E402

IMAGE_DIR = HERE.parent
GUEST_DIR = "/usr/local/lib/wattsmart-image-test"
UNIT = "wattsmart-ab-test.service"
GUEST_FILES = {
    HERE / "guest_lab.py": f"{GUEST_DIR}/guest_lab.py",
    HERE / "guest_ab.py": f"{GUEST_DIR}/guest_ab.py",
    HERE / UNIT: f"/etc/systemd/system/{UNIT}",
    # the lab (2030.5 server, PKI, SunSpec simulator) is not in the box's wheel: as make image-test
    **{src: f"{GUEST_DIR}/{boot_test.LAB.name}/{src.name}" for src in sorted(boot_test.LAB.glob("*.py"))},
}
WANTS_LINK = f"/etc/systemd/system/multi-user.target.wants/{UNIT}"
NEVER_READY = "/etc/systemd/system/wattsmart-gateway.service.d/99-ab-test-never-ready.conf"
MAX_BOOTS = 4


def fail(text: str) -> None:
    print(f"image-test-ab: {text}", file=sys.stderr)
    sys.exit(2)


def debugfs(target: str, cmds: list[str], work: Path, ignore: tuple[str, ...] = ()) -> None:
    script = work / "debugfs.cmds"
    script.write_text("\n".join(cmds) + "\n")
    res = subprocess.run(
        ["debugfs", "-w", "-f", str(script), target], capture_output=True, text=True, check=False
    )
    errors = [
        line
        for line in res.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ") and not any(i in line for i in ignore)
    ]
    if res.returncode != 0 or errors:
        fail(f"debugfs on {target}:\n{res.stderr}")


def has(target: str, path: str) -> bool:
    res = subprocess.run(
        ["debugfs", "-R", f"stat {path}", target], capture_output=True, text=True, check=False
    )
    return "Inode:" in res.stdout


def inject(disk: Path, index: int, work: Path) -> bool:
    """Add the test files to root slot partition `index` (1 = root_a, 2 = root_b) if it holds a system."""
    part = boot_test.partitions(disk)[index]
    target = f"{disk}?offset={part['start'] * 512}"
    if not has(target, "/etc/wattsmart-image") or has(target, WANTS_LINK):
        return False
    cmds = [f"mkdir {GUEST_DIR}", f"mkdir {GUEST_DIR}/{boot_test.LAB.name}"]
    for src, dest in GUEST_FILES.items():
        cmds += [f"write {src} {dest}", f"sif {dest} uid 0", f"sif {dest} gid 0", f"sif {dest} mode 0100644"]
    cmds.append(f"symlink {WANTS_LINK} /etc/systemd/system/{UNIT}")
    debugfs(target, cmds, work, ignore=("File exists",))
    if not has(target, WANTS_LINK):
        fail(f"the test unit was not added to partition {index + 1}")
    return True


def bad_bundle(out: Path, work: Path, version: str) -> Path:
    """The image's root file system plus a drop-in that keeps the gateway from ever sending READY."""
    rootfs = work / "never-ready.ext4"
    subprocess.run(["cp", "--sparse=always", str(out / "rootfs.ext4"), str(rootfs)], check=True)
    dropin = work / "never-ready.conf"
    dropin.write_text(
        "# image-test-ab: this bundle's gateway never reaches READY (a release that hangs at start-up)\n"
        "[Service]\nExecStart=\nExecStart=/bin/sleep infinity\n"
    )
    folder = NEVER_READY.rsplit("/", 1)[0]
    cmds = [f"mkdir {folder}", f"write {dropin} {NEVER_READY}"]
    cmds += [f"sif {NEVER_READY} uid 0", f"sif {NEVER_READY} gid 0", f"sif {NEVER_READY} mode 0100644"]
    debugfs(str(rootfs), cmds, work, ignore=("File exists",))
    bundle = work / "never-ready.raucb"
    env = {**os.environ, "OS_BUNDLE_ROOTFS": str(rootfs), "OS_BUNDLE": str(bundle)}
    env["OS_BUNDLE_VERSION"] = f"{version}+never-ready"
    subprocess.run([str(IMAGE_DIR / "os-bundle.sh")], check=True, env=env)
    rootfs.unlink()
    return bundle


def stick(work: Path, bundle: Path, name: str) -> Path:
    """A second disk (ext4, LABEL=WSGSTICK) with the bundle and the scenario: the "USB stick"."""
    content = work / f"stick-{name}"
    shutil.rmtree(content, ignore_errors=True)
    content.mkdir()
    os.link(bundle, content / bundle.name) if bundle.stat().st_dev == content.stat().st_dev else shutil.copy(
        bundle, content / bundle.name
    )
    (content / "scenario.json").write_text(json.dumps({"name": name, "bundle": bundle.name}) + "\n")
    size_mib = bundle.stat().st_size // 2**20 + 64
    image = work / f"stick-{name}.img"
    image.unlink(missing_ok=True)
    subprocess.run(
        ["mke2fs", "-q", "-t", "ext4", "-L", "WSGSTICK", "-d", str(content), str(image), f"{size_mib}M"],
        check=True,
    )
    shutil.rmtree(content)
    return image


def run_scenario(name: str, bundle: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: Path = args.out
    image = out / (out / "latest").read_text().strip()
    disk = work / f"disk-{name}.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(disk)], check=True)
    with disk.open("r+b") as f:
        f.truncate(disk.stat().st_size + boot_test.GROW)
    stick_img = stick(work, bundle, name)
    boots: list[dict[str, Any]] = []
    result: str | None = None
    summary: dict[str, Any] = {}
    for n in range(1, MAX_BOOTS + 1):
        injected = [i + 1 for i in (1, 2) if inject(disk, i, work)]
        cmd = boot_test.qemu_command(disk, out / "vmlinuz", out / "initrd.img", args.smp, args.memory)
        cmd += [
            "-drive", f"if=none,file={stick_img},format=raw,id=stick,readonly=on",
            "-device", "virtio-blk-pci,drive=stick",
        ]  # fmt: skip
        print(f"image-test-ab: {name}: boot {n} (test files added to partition(s) {injected or 'none'})")
        marks, wall, finished = boot_test.boot(cmd, work / f"console-{name}-{n}.log", args.timeout)
        boots.append({"boot": n, "wall_s": round(wall, 1), "powered_off": finished, "marks": len(marks)})
        for mark in marks:
            text = mark.split("] ", 1)[-1]
            if text.startswith("SUMMARY "):
                summary = json.loads(text.split("SUMMARY ", 1)[1])
            if text.startswith("RESULT ") and (n > 1 or not text.startswith("RESULT PASS")):
                result = text
        if result is not None or not finished:
            break
    passed = result == "RESULT PASS"
    if passed:
        disk.unlink()
        stick_img.unlink()
    return {"scenario": name, "passed": passed, "result": result, "boots": boots, "guest": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("IMAGE_OUT", IMAGE_DIR / "out")))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("IMAGE_TEST_TIMEOUT", "900")))
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--memory", type=int, default=1024, help="MiB")
    parser.add_argument("--only", choices=("good", "bad"), help="run one scenario")
    args = parser.parse_args(argv)
    for tool in ("qemu-system-aarch64", "debugfs", "sfdisk", "mke2fs", "rauc", "mksquashfs"):
        if shutil.which(tool) is None:
            fail(
                f"{tool} is missing: apt-get install --no-install-recommends"
                f" {boot_test.PACKAGES} rauc squashfs-tools"
            )
    out: Path = args.out
    if not (out / "latest").exists() or not (out / "rootfs.ext4").exists():
        fail(f"no image in {out}: run `make image` first")
    name = (out / "latest").read_text().strip().removesuffix(".img")
    good = out / f"{name}.raucb"
    if not good.exists():
        fail(f"no {good.name}: run `make os-bundle` first")
    work = out / "test-ab"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    version = next(
        (line.split("=", 1)[1] for line in (out / f"{name}.manifest").read_text().splitlines()
         if line.startswith("image_version=")),
        "0",
    )  # fmt: skip
    started = time.monotonic()
    results = []
    if args.only in (None, "good"):
        results.append(run_scenario("good", good, args, work))
    if args.only in (None, "bad"):
        t0 = time.monotonic()
        bad = bad_bundle(out, work, version)
        print(f"image-test-ab: never-READY bundle {bad.name} built in {time.monotonic() - t0:.0f} s")
        results.append(run_scenario("bad", bad, args, work))
    report = {
        "passed": all(r["passed"] for r in results) and bool(results),
        "bundle": good.name,
        "bundle_bytes": good.stat().st_size,
        "wall_s": round(time.monotonic() - started, 1),
        "scenarios": results,
    }
    (work / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        walls = ", ".join(f"boot {b['boot']} {b['wall_s']} s" for b in r["boots"])
        print(f"image-test-ab: {r['scenario']}: {'PASS' if r['passed'] else 'FAIL'} ({r['result']}); {walls}")
    print(
        f"image-test-ab: {'PASS' if report['passed'] else 'FAIL'} in {report['wall_s']:.0f} s; "
        f"bundle {good.name} {good.stat().st_size / 2**20:.0f} MiB; see {work / 'result.json'}"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
