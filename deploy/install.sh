#!/bin/sh
# Install (or update) the wattsmart gateway on a Debian-based box, as root.
#
#   deploy/install.sh [options] WHEEL
#
# WHEEL is the gateway's wheel (wattsmart_gateway-<version>-py3-none-any.whl, from `pip wheel .` or
# `python -m build`). What it does, each step safe to repeat:
#   1. a venv per version:  /opt/wattsmart-gateway/releases/<version>/  (bin/wattsmart-gateway)
#   2. flips the symlink    /opt/wattsmart-gateway/current -> releases/<version>  (atomically;
#      the one it replaced becomes `previous`, for a manual rollback)
#   3. the system user and gpio group (sysusers.d), state folders (tmpfiles.d; the update state is
#      root's /var/lib/wattsmart-gateway-ota, the old one inside the gateway's folder is removed), the gpio udev rule,
#      the hardware watchdog drop-in for PID 1, the service unit and the update units (app/ota):
#      its drop-in wattsmart-gateway.service.d/10-ota.conf (OnFailure= rollback, recover first),
#      wattsmart-gateway-rollback.service, -recover.service and -updater.service
#   4. /etc/wattsmart-gateway/gateway.yaml from the example, only if there is none
#   5. the update trust store /etc/wattsmart-gateway/ota-trust.json from --trust (see there)
#   6. enables the service, the recover and the updater units and, when systemd is running,
#      (re)starts the service and the updater, unless the config was only just copied from the
#      example (edit it first, then `systemctl start wattsmart-gateway`)
# It refuses to run while an over-the-air update is under way (`wattsmart-gateway update status`).
# Works on a running box and in a chroot/container tree where systemd is not running (steps that
# need a running systemd or udev are skipped with a note).
#
# Options:
#   --wheelhouse DIR        install offline: dependencies come from DIR only (pip --no-index)
#   --config FILE           the config to install when there is none (default: the example)
#   --trust FILE            the fleet's public trust store (`python -m wattsmart_release trust`),
#                           installed root-owned 0644; one already on the box is replaced only by a
#                           higher serial (signed key rotations update it). Without any trust
#                           store the box refuses every update bundle.
#   --prefix DIR            where releases live (default /opt/wattsmart-gateway)
#   --system-site-packages  let the venv see Debian's Python packages (e.g. python3-rpi-lgpio on
#                           Raspberry Pi OS, which must not be shadowed by a pip-installed RPi.GPIO)
#   --reinstall             rebuild the release's venv even if this version is already installed
#   --no-hw-watchdog        do not arm the hardware watchdog (VMs and containers without one)
#   --no-start              enable the service but do not (re)start it
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/wattsmart-gateway
wheelhouse=
config_src=$here/gateway.example.yaml
config_given=0
trust=
site_packages=
reinstall=0
hw_watchdog=1
start=1
wheel=

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit "${1:-0}"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

note() {
    echo "install.sh: $*"
}

while [ $# -gt 0 ]; do
    case $1 in
        --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a folder"; wheelhouse=$2; shift ;;
        --config) [ $# -ge 2 ] || die "--config needs a file"; config_src=$2; config_given=1; shift ;;
        --trust) [ $# -ge 2 ] || die "--trust needs a file"; trust=$2; shift ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift ;;
        --system-site-packages) site_packages=--system-site-packages ;;
        --reinstall) reinstall=1 ;;
        --no-hw-watchdog) hw_watchdog=0 ;;
        --no-start) start=0 ;;
        -h | --help) usage 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$wheel" ] || die "give one wheel, got $wheel and $1"; wheel=$1 ;;
    esac
    shift
done

[ -n "$wheel" ] || usage 2 >&2
[ -f "$wheel" ] || die "$wheel: no such file"
[ "$(id -u)" -eq 0 ] || die "run as root"
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || die "$wheelhouse: no such folder"
[ -f "$config_src" ] || die "$config_src: no such file"
[ -z "$trust" ] || [ -f "$trust" ] || die "$trust: no such file"
command -v python3 >/dev/null || die "python3 is missing (apt-get install python3 python3-venv)"
python3 -c 'import ensurepip, venv' 2>/dev/null || die "python3-venv is missing (apt-get install python3-venv)"

# wattsmart_gateway-0.1.0-py3-none-any.whl -> 0.1.0
version=$(basename "$wheel" | sed -n 's/^wattsmart_gateway-\([^-]*\)-.*\.whl$/\1/p')
[ -n "$version" ] || die "$wheel: not a wattsmart_gateway-<version>-….whl file"

# Never switch releases under an over-the-air update (it would undo or confuse its trial). The state
# is root's /var/lib/wattsmart-gateway-ota; releases before it kept it in the gateway's own folder.
ota_legacy=/var/lib/wattsmart-gateway/ota
for ota_state in /var/lib/wattsmart-gateway-ota/state.json "$ota_legacy/state.json"; do
    [ -f "$ota_state" ] || continue
    phase=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("phase", "idle"))' \
        "$ota_state" 2>/dev/null || echo unreadable)
    [ "$phase" = idle ] || [ "$phase" = unreadable ] ||
        die "an over-the-air update is under way ($phase; see: wattsmart-gateway update status); wait for it to end"
done

# systemd (and udev) running on this root? Not in a chroot, an image build or `nspawn` without -b.
systemd_running=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemd_running=1
fi

# 1. the release's venv. Venvs are not relocatable: it is built at its final path.
release=$prefix/releases/$version
if [ -e "$release" ] && [ "$reinstall" -eq 1 ]; then
    note "removing $release to rebuild it"
    rm -rf "$release"
fi
if [ -x "$release/bin/wattsmart-gateway" ]; then
    note "$version is already installed in $release (--reinstall rebuilds it)"
else
    rm -rf "$release"
    mkdir -p "$prefix/releases"
    note "creating $release"
    # shellcheck disable=SC2086  # $site_packages is empty or one option
    python3 -m venv $site_packages "$release"
    if [ -n "$wheelhouse" ]; then
        "$release/bin/pip" install --quiet --no-index --find-links "$wheelhouse" "$wheel" ||
            { rm -rf "$release"; die "pip install from $wheelhouse failed"; }
    else
        "$release/bin/pip" install --quiet "$wheel" ||
            { rm -rf "$release"; die "pip install failed"; }
    fi
    "$release/bin/wattsmart-gateway" --version >/dev/null ||
        { rm -rf "$release"; die "the installed gateway does not run"; }
fi

# 2. flip `current` atomically; keep the one it replaced as `previous`.
old=$(readlink "$prefix/current" 2>/dev/null || true)
if [ "$old" != "releases/$version" ]; then
    if [ -n "$old" ]; then
        ln -sfn "$old" "$prefix/previous.new"
        mv -T "$prefix/previous.new" "$prefix/previous"
    fi
    ln -sfn "releases/$version" "$prefix/current.new"
    mv -T "$prefix/current.new" "$prefix/current"
    note "current -> releases/$version${old:+ (previous -> $old)}"
fi

# 3. system integration.
install -D -m 0644 "$here/sysusers.d/wattsmart-gateway.conf" /usr/local/lib/sysusers.d/wattsmart-gateway.conf
install -D -m 0644 "$here/tmpfiles.d/wattsmart-gateway.conf" /usr/local/lib/tmpfiles.d/wattsmart-gateway.conf
install -D -m 0644 "$here/udev/rules.d/60-wattsmart-gateway-gpio.rules" \
    /etc/udev/rules.d/60-wattsmart-gateway-gpio.rules
units=/usr/local/lib/systemd/system
for unit in wattsmart-gateway.service wattsmart-gateway-recover.service wattsmart-gateway-rollback.service \
    wattsmart-gateway-updater.service wattsmart-gateway.service.d/10-ota.conf; do
    install -D -m 0644 "$here/$unit" "$units/$unit"
done
if [ "$hw_watchdog" -eq 1 ]; then
    install -D -m 0644 "$here/system.conf.d/10-wattsmart-watchdog.conf" \
        /etc/systemd/system.conf.d/10-wattsmart-watchdog.conf
else
    rm -f /etc/systemd/system.conf.d/10-wattsmart-watchdog.conf
fi
systemd-sysusers /usr/local/lib/sysusers.d/wattsmart-gateway.conf
systemd-tmpfiles --create /usr/local/lib/tmpfiles.d/wattsmart-gateway.conf
# the old update state folder sat where the gateway's user could replace it: nothing in it is trusted
# (not even the manifest serial); the updater starts afresh in /var/lib/wattsmart-gateway-ota
if [ -e "$ota_legacy" ] || [ -L "$ota_legacy" ]; then
    rm -rf "$ota_legacy"
    note "removed the old update state folder $ota_legacy (now /var/lib/wattsmart-gateway-ota, root's)"
fi

# 4. config: never overwrite the installer's file. Readable by the gateway, not by everyone.
mkdir -p /etc/wattsmart-gateway
if [ ! -e /etc/wattsmart-gateway/gateway.yaml ]; then
    install -m 0640 -o root -g wattsmart-gateway "$config_src" /etc/wattsmart-gateway/gateway.yaml
    note "installed /etc/wattsmart-gateway/gateway.yaml from $config_src"
    if [ "$config_given" -eq 0 ]; then
        note "it is the example: edit it (server, certificates, inverter), then: systemctl start wattsmart-gateway"
        start=0
    fi
fi

# 5. the update trust store. Checked with the release's own parser before it goes in place.
trust_store=/etc/wattsmart-gateway/ota-trust.json
trust_serial() {
    "$release/bin/python" -c 'import sys
from pathlib import Path
from app.ota.keys import load_trust_store
print(load_trust_store(Path(sys.argv[1])).serial)' "$1" 2>/dev/null
}
if [ -n "$trust" ]; then
    new_serial=$(trust_serial "$trust") ||
        die "$trust: not a trust store (make one with: python -m wattsmart_release trust)"
    old_serial=-1
    if [ -e "$trust_store" ]; then
        old_serial=$(trust_serial "$trust_store") || old_serial=-1 # damaged: replace it
    fi
    if [ -e "$trust_store" ] && cmp -s "$trust" "$trust_store"; then
        note "$trust_store is already $trust"
    elif [ "$new_serial" -gt "$old_serial" ]; then
        install -m 0644 -o root -g root "$trust" "$trust_store.new"
        mv -f "$trust_store.new" "$trust_store"
        note "installed $trust_store (serial $new_serial)"
    else
        # a signed key rotation may have replaced ours; an older store could trust a revoked key again
        note "kept $trust_store (serial $old_serial): $trust has serial $new_serial, not higher"
    fi
elif [ ! -e "$trust_store" ]; then
    note "no $trust_store: update bundles are refused until one is installed (--trust FILE)"
fi

# 6. enable, reload, (re)start.
ota_units="wattsmart-gateway-recover.service wattsmart-gateway-updater.service"
if [ "$systemd_running" -eq 1 ]; then
    systemctl daemon-reload # also makes PID 1 re-read system.conf.d (the hardware watchdog)
    if command -v udevadm >/dev/null && [ -S /run/udev/control ]; then
        udevadm control --reload
        udevadm trigger --action=change --subsystem-match=gpio || true
    fi
    # shellcheck disable=SC2086  # $ota_units is a list of unit names
    systemctl enable --quiet wattsmart-gateway.service $ota_units
    if [ "$start" -eq 1 ]; then
        systemctl restart wattsmart-gateway.service
        # the updater runs from `current`: restart it so it runs the release just installed
        systemctl restart wattsmart-gateway-updater.service
        note "started; see: systemctl status wattsmart-gateway; journalctl -u wattsmart-gateway"
    else
        note "enabled, not started"
    fi
else
    # shellcheck disable=SC2086
    systemctl enable --quiet wattsmart-gateway.service $ota_units 2>/dev/null ||
        systemctl --root=/ enable --quiet wattsmart-gateway.service $ota_units
    note "systemd is not running here: enabled for the next boot"
fi
note "wattsmart-gateway $version installed"
