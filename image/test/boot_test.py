"""`make image-test`: boot the SD image under qemu-system-aarch64 -M virt and read its report.

1. Copies the image from `make image` (sparse) and makes the copy 256 MiB larger, as a bigger SD
   card would be: the first boot must grow the data partition into it.
2. Adds the test unit, the lab script and a copy of the lab package (tests/labpkg/wattsmart_lab:
   the 2030.5 lab server and the SunSpec simulator, which the box's wheel does not carry) to the
   copy's root_a with debugfs (no mounts, no loop devices); the image itself is untouched, and the
   product image carries no test code.
3. Boots the copy with the kernel and initrd taken from the image's tree (TCG, no KVM), with no
   way out of the guest: user-mode networking with restrict=on (DHCP on a private segment only).
4. Reads the serial console until `WSG-IMAGE-TEST: RESULT ...` (or the timeout), lets the guest
   power off, prints the milestones with their times and writes image/out/test/result.json.

Standard library only; run as root (debugfs on the copy). Exit status 0 only on RESULT PASS.
"""

# ruff: noqa: S603, S607  (fixed host tools: sfdisk, debugfs, cp, nice, qemu)

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE_DIR = HERE.parent
MARK = "WSG-IMAGE-TEST:"
GROW = 256 * 1024 * 1024
GUEST_DIR = "/usr/local/lib/wattsmart-image-test"
#: the lab (2030.5 server, PKI, SunSpec simulator) is not in the box's wheel: the test brings its
#: own copy, beside guest_lab.py (the script's folder is first on its sys.path)
LAB = IMAGE_DIR.parent / "tests" / "labpkg" / "wattsmart_lab"
GUEST_FILES = {
    HERE / "guest_lab.py": f"{GUEST_DIR}/guest_lab.py",
    HERE / "wattsmart-image-test.service": "/etc/systemd/system/wattsmart-image-test.service",
    **{src: f"{GUEST_DIR}/{LAB.name}/{src.name}" for src in sorted(LAB.glob("*.py"))},
}
WANTS_LINK = "/etc/systemd/system/multi-user.target.wants/wattsmart-image-test.service"
PACKAGES = "qemu-system-arm e2fsprogs fdisk"
KERNEL_ARGS = (
    "root=LABEL=root_a rw rootwait console=ttyAMA0 net.ifnames=0 panic=-1 loglevel=4 systemd.show_status=auto"
)


def fail(text: str) -> None:
    print(f"image-test: {text}", file=sys.stderr)
    sys.exit(2)


def partitions(disk: Path) -> list[dict[str, int]]:
    out = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True).stdout
    table = json.loads(out)["partitiontable"]
    return [{"start": int(p["start"]), "size": int(p["size"])} for p in table["partitions"]]


def inject(disk: Path, work: Path) -> None:
    """Write the test files into root_a (partition 2) of `disk` with debugfs."""
    root_a = partitions(disk)[1]
    target = f"{disk}?offset={root_a['start'] * 512}"
    cmds = [f"mkdir {GUEST_DIR}", f"mkdir {GUEST_DIR}/{LAB.name}"]
    for src, dest in GUEST_FILES.items():
        cmds += [f"write {src} {dest}", f"sif {dest} uid 0", f"sif {dest} gid 0", f"sif {dest} mode 0100644"]
    cmds.append(f"symlink {WANTS_LINK} {GUEST_FILES[HERE / 'wattsmart-image-test.service']}")
    script = work / "debugfs.cmds"
    script.write_text("\n".join(cmds) + "\n")
    cmd = ["debugfs", "-w", "-f", str(script), target]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    errors = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if res.returncode != 0 or errors:
        fail("debugfs could not add the test files:\n" + res.stderr)
    check = subprocess.run(
        ["debugfs", "-R", f"stat {WANTS_LINK}", target], capture_output=True, text=True, check=False
    )
    if "Type: symlink" not in check.stdout:
        fail("the test unit was not enabled in the copy:\n" + check.stdout + check.stderr)


def qemu_command(disk: Path, kernel: Path, initrd: Path, smp: int, memory: int) -> list[str]:
    return [
        "qemu-system-aarch64",
        "-M", "virt",
        "-cpu", "cortex-a72",  # no pointer authentication: much cheaper to emulate than -cpu max
        "-smp", str(smp),
        "-m", str(memory),
        "-accel", "tcg",
        "-nographic", "-no-reboot",
        "-monitor", "none", "-serial", "stdio",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", KERNEL_ARGS,
        "-drive", f"if=none,file={disk},format=raw,id=hd,cache=unsafe",
        "-device", "virtio-blk-pci,drive=hd",
        "-device", "virtio-rng-pci",
        # a NIC so the box sees the network it expects (DHCP), but nothing reaches past qemu
        "-netdev", "user,id=net0,restrict=on,ipv6=off",
        "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE ROM (ipxe-qemu not needed)
    ]  # fmt: skip


def boot(
    cmd: list[str],
    log_path: Path,
    timeout_s: float,
    on_line: Callable[[str], None] | None = None,
    grace_s: float = 90,
) -> tuple[list[str], float, bool]:
    """Run qemu, stream the console to `log_path` (each line to `on_line` too); return the marker
    lines, the wall time, and whether qemu ended by itself."""
    started = time.monotonic()
    proc = subprocess.Popen(
        ["nice", "-n", "10", *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: queue.Queue[bytes | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    marks: list[str] = []
    result_at: float | None = None
    finished = False
    with log_path.open("w", encoding="utf-8", errors="replace") as log:
        while True:
            now = time.monotonic()
            limit = started + timeout_s if result_at is None else result_at + grace_s
            try:
                raw = lines.get(timeout=max(0.1, limit - now))
            except queue.Empty:
                raw = b""
                if proc.poll() is not None:  # qemu is gone even if its output pipe never closed
                    finished = True
                    break
            if raw is None:
                finished = True
                break
            if time.monotonic() > limit:
                break
            if not raw:
                continue
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace")).rstrip("\r\n")
            log.write(text + "\n")
            log.flush()
            if on_line is not None:
                on_line(text)
            idx = text.find(MARK)
            if idx >= 0:
                mark = text[idx + len(MARK) :].strip()
                if mark not in marks:  # the unit prints to the journal and the console
                    marks.append(mark)
                    print(f"  {mark}", flush=True)
                if " RESULT " in f" {mark} " and result_at is None:
                    result_at = time.monotonic()
    wall = time.monotonic() - started
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return marks, wall, finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("IMAGE_OUT", IMAGE_DIR / "out")))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("IMAGE_TEST_TIMEOUT", "1200")))
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--memory", type=int, default=1024, help="MiB")
    args = parser.parse_args(argv)

    for tool in ("qemu-system-aarch64", "debugfs", "sfdisk"):
        if shutil.which(tool) is None:
            fail(f"{tool} is missing: apt-get install --no-install-recommends {PACKAGES}")
    out: Path = args.out
    latest = out / "latest"
    if not latest.exists():
        fail(f"no image in {out}: run `make image` first")
    image = out / latest.read_text().strip()
    kernel, initrd = out / "vmlinuz", out / "initrd.img"
    work = out / "test"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    disk = work / "disk.img"
    print(f"image-test: {image.name} -> {disk} (+{GROW >> 20} MiB), test unit added with debugfs")
    subprocess.run(["cp", "--sparse=always", str(image), str(disk)], check=True)
    with disk.open("r+b") as f:
        f.truncate(disk.stat().st_size + GROW)
    inject(disk, work)

    cmd = qemu_command(disk, kernel, initrd, args.smp, args.memory)
    print("image-test: " + " ".join(cmd))
    print(f"image-test: booting under TCG (timeout {args.timeout:.0f} s); console -> {work / 'console.log'}")
    marks, wall, finished = boot(cmd, work / "console.log", args.timeout)

    result = next((m for m in reversed(marks) if m.split("] ", 1)[-1].startswith("RESULT ")), None)
    summary_line = next((m for m in marks if m.split("] ", 1)[-1].startswith("SUMMARY ")), None)
    summary = json.loads(summary_line.split("SUMMARY ", 1)[1]) if summary_line else {}
    passed = result is not None and result.endswith("RESULT PASS")
    report = {
        "passed": passed,
        "result": result,
        "powered_off": finished,
        "wall_s": round(wall, 1),
        "guest": summary,
        "image": image.name,
        "qemu": cmd,
    }
    (work / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    ms = summary.get("milestones_s", {})
    seen = ", ".join(f"{name} {ms.get(name, '-')} s" for name in ("ready", "enddevice", "control", "reading"))
    print(
        f"image-test: {'PASS' if passed else 'FAIL'} in {wall:.0f} s wall; guest (after kernel start): "
        f"{seen}, report {summary.get('report_at_s', '-')} s; powered off: {'yes' if finished else 'no'}"
    )
    if not passed:
        print(f"image-test: {result or 'no RESULT line before the timeout'}; see {work / 'console.log'}")
    if passed:
        disk.unlink()  # 3+ GiB of sparse copy; the console log and result.json stay
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
