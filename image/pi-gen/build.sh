#!/usr/bin/env bash
# Build the production Raspberry Pi OS Lite image with pi-gen and stage-wattsmart.
#
#   image/pi-gen/build.sh            (as root, on a host that can reach archive.raspberrypi.com)
#
# It cannot run on this project's build machines: pi-gen installs the kernel, firmware and
# raspi-config from archive.raspberrypi.com (unreachable there) and its export loop-mounts a vfat
# boot partition (no vfat in that kernel). There it is linted (shellcheck) and structure-tested
# (tests/image/test_pi_gen.py). What it does:
#   1. clones pi-gen (PI_GEN_URL at PI_GEN_REF; pin a commit for release builds) into PI_GEN_DIR
#   2. builds the gateway's wheel from this checkout's HEAD and downloads aarch64 wheels of its
#      dependencies for the release's Python into stage-wattsmart/00-gateway/files/wheelhouse
#   3. copies deploy/ and image/rootfs's hardening files into the stage's files/ folders
#   4. writes pi-gen's config (image/pi-gen/config + STAGE_LIST) and skips stage2's own export
#   5. runs pi-gen's build.sh (or build-docker.sh with USE_DOCKER=1)
#
# Environment: PI_GEN_URL, PI_GEN_REF, PI_GEN_DIR, SSH_PUBKEY ("ssh-ed25519 AAAA... who"; without
# it SSH stays off), USE_DOCKER=1.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
stage=$here/stage-wattsmart
PI_GEN_URL=${PI_GEN_URL:-https://github.com/RPi-Distro/pi-gen.git}
# The arm64 branch builds 64-bit Raspberry Pi OS; pin a commit (or a release tag) for production.
PI_GEN_REF=${PI_GEN_REF:-arm64}
PI_GEN_DIR=${PI_GEN_DIR:-$here/.pi-gen}

die() {
    echo "image/pi-gen/build.sh: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || [ "${USE_DOCKER:-0}" = 1 ] || die "pi-gen's build.sh runs as root"
command -v git >/dev/null || die "git is missing"

. "$here/config"
case $RELEASE in
    bookworm) py=3.11 ;;
    trixie) py=3.13 ;;
    *) die "RELEASE=$RELEASE: which Python does it ship? add it here" ;;
esac

# 1. pi-gen
if [ ! -d "$PI_GEN_DIR/.git" ]; then
    git clone "$PI_GEN_URL" "$PI_GEN_DIR"
fi
git -C "$PI_GEN_DIR" fetch --quiet origin "$PI_GEN_REF"
git -C "$PI_GEN_DIR" checkout --quiet --detach FETCH_HEAD
echo "pi-gen at $(git -C "$PI_GEN_DIR" rev-parse HEAD)"

# 2. wheels for aarch64 / the release's CPython
files=$stage/00-gateway/files
rm -rf "$files"
mkdir -p "$files/wheelhouse"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git -C "$repo" archive --format=tar HEAD | tar -x -C "$src"
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct HEAD) \
    python3 -m pip wheel --quiet --no-deps -w "$files/wheelhouse" "$src"
SDIST_ONLY=$(. "$repo/image/config.env" && echo "$SDIST_ONLY")
# shellcheck disable=SC2086  # a whitespace-separated list
python3 -m pip wheel --quiet --no-deps -w "$files/wheelhouse" $SDIST_ONLY
gateway_whl=$(find "$files/wheelhouse" -maxdepth 1 -name 'wattsmart_gateway-*.whl' | head -n1)
python3 -m pip download --quiet --only-binary=:all: \
    --platform manylinux2014_aarch64 --python-version "$py" --implementation cp --abi "cp${py/./}" \
    --find-links "$files/wheelhouse" -d "$files/wheelhouse" "$gateway_whl"

# 3. deploy/ and the shared hardening files
cp -a "$repo/deploy" "$files/deploy"
hardening=$stage/01-hardening/files
rm -rf "$hardening"
mkdir -p "$hardening"
cp "$repo/image/rootfs/etc/ssh/sshd_config.d/10-wattsmart.conf" "$hardening/sshd-10-wattsmart.conf"
cp "$repo/image/rootfs/etc/sysctl.d/80-wattsmart.conf" "$hardening/sysctl-80-wattsmart.conf"
cp "$repo/image/rootfs/etc/systemd/journald.conf.d/10-wattsmart.conf" "$hardening/journald-10-wattsmart.conf"

# 4. pi-gen's config: ours, then the stage list (stage2 = Lite, exported by our stage instead)
# (and the throw-away password pi-gen insists on; stage-wattsmart locks the account)
throwaway=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
{
    cat "$here/config"
    echo "STAGE_LIST=\"stage0 stage1 stage2 $stage\""
    echo "FIRST_USER_PASS=\"$throwaway\""
} >"$PI_GEN_DIR/config"
chmod 0600 "$PI_GEN_DIR/config"
touch "$PI_GEN_DIR/stage2/SKIP_IMAGES"

# 5. build
cd "$PI_GEN_DIR"
if [ "${USE_DOCKER:-0}" = 1 ]; then
    ./build-docker.sh
else
    ./build.sh
fi
echo "images: $PI_GEN_DIR/deploy/"
