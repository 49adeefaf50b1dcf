"""The header-UART overlay (image/dt) compiles and applies to an upstream-style device tree.

Upstream device trees (Debian's kernel) carry no __symbols__, so the overlay may only target nodes
by path; this applies it with fdtoverlay - the same merge the firmware does at boot - to a tree
with the Pi 3's node paths, and reads the result back. `make image-test-pi` boots it for real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "image" / "dt" / "wattsmart-uart0-header.dts"

# the nodes the overlay touches, as bcm2837-rpi-3-b.dtb has them (no __symbols__)
BASE = """/dts-v1/;
/ {
	#address-cells = <1>; #size-cells = <1>;
	aliases { serial0 = "/soc/serial@7e201000"; serial1 = "/soc/serial@7e215040"; };
	soc {
		#address-cells = <1>; #size-cells = <1>;
		gpio@7e200000 {
			reg = <0x7e200000 0xb4>;
			uart0_gpio32 { brcm,pins = <32 33>; brcm,function = <7>; phandle = <8>; };
			uart1_gpio14 { brcm,pins = <14 15>; brcm,function = <2>; phandle = <16>; };
		};
		serial@7e201000 {
			reg = <0x7e201000 0x200>; status = "okay";
			pinctrl-names = "default"; pinctrl-0 = <8>;
			bluetooth { compatible = "brcm,bcm43438-bt"; };
		};
		serial@7e215040 { reg = <0x7e215040 0x40>; status = "okay"; pinctrl-0 = <16>; };
	};
};
"""


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def tools() -> None:
    for tool in ("dtc", "fdtoverlay", "fdtget"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            pytest.fail(f"{tool} is missing: apt-get install device-tree-compiler (.ci/run does)")


@pytest.mark.parametrize("name", ["wattsmart-uart0-header", "wattsmart-uart0-header-rts"])
def test_overlay_moves_the_pl011_to_gpio14_and_switches_bluetooth_and_the_mini_uart_off(
    tmp_path: Path, tools: None, name: str
) -> None:
    (tmp_path / "base.dts").write_text(BASE)
    run("dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "base.dtb", tmp_path / "base.dts")
    source = OVERLAY.with_name(f"{name}.dts")
    run("dtc", "-@", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "o.dtbo", source)
    run("fdtoverlay", "-i", tmp_path / "base.dtb", "-o", tmp_path / "out.dtb", tmp_path / "o.dtbo")
    out = tmp_path / "out.dtb"

    def get(node: str, prop: str, *fmt: str) -> str:
        return run("fdtget", *fmt, out, node, prop).strip()

    pins = "/soc/gpio@7e200000/wattsmart_uart0_gpio14"
    assert (get(pins, "brcm,pins"), get(pins, "brcm,function")) == ("14 15", "4")  # ALT0 = TXD0/RXD0
    groups = get("/soc/serial@7e201000", "pinctrl-0").split()
    if name.endswith("-rts"):  # RTS0 on BCM 17 for the kernel's RS-485 mode
        rts = "/soc/gpio@7e200000/wattsmart_uart0_rts_gpio17"
        assert (get(rts, "brcm,pins"), get(rts, "brcm,function")) == ("17", "7")  # ALT3 = RTS0
        assert groups == [get(pins, "phandle"), get(rts, "phandle")]
    else:
        assert groups == [get(pins, "phandle")]
    assert get("/soc/serial@7e201000", "status") == "okay"
    assert get("/soc/serial@7e201000/bluetooth", "status") == "disabled"
    assert get("/soc/serial@7e215040", "status") == "disabled"
    assert get("/aliases", "serial0") == "/soc/serial@7e201000"  # so the PL011 stays /dev/ttyAMA0


def test_config_txt_names_the_overlay_and_the_config_uses_its_port() -> None:
    custom = (REPO / "image/rootfs/etc/default/raspi-firmware-custom").read_text()
    assert "dtoverlay=wattsmart-uart0-header" in custom.splitlines()
    example = (REPO / "deploy/gateway.example.yaml").read_text()
    assert "    port: /dev/ttyAMA0\n" in example
    unit = (REPO / "deploy/wattsmart-gateway.service").read_text()
    assert "DeviceAllow=char-ttyAMA rw" in unit
