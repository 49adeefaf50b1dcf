#!/usr/bin/env bash
# Build the wattsmart-gateway SD-card image (Debian bookworm, arm64) from Debian's archive only.
#
#   image/build.sh            (what `make image` runs, as root)
#
# Three cached layers, each rebuilt only when its inputs change:
#   1. base tree   mmdebstrap + qemu-user-static: Debian packages only (config.env).   ~10+ min cold
#                  -> image/cache/base-<key>.tar, with the exact package versions beside it
#   2. gateway     the gateway's wheel (from the checkout's HEAD) + aarch64 wheels of its
#                  dependencies, installed by deploy/install.sh inside the tree under qemu-user,
#                  then image/customize.sh (hardening, first boot, fstab, SSH policy)
#                  -> image/cache/rootfs-<key>/
#   3. image       genimage (mtools for the vfat boot partition, mke2fs -d for ext4; no loop mounts)
#                  -> image/out/wattsmart-gateway-<version>-<suite>-arm64.img (+ kernel, initrd,
#                     manifest, SHA256SUMS)
#
# Environment:
#   SSH_AUTHORIZED_KEYS=FILE  enable SSH (key only, root) with these keys; without it SSH is off
#   IMAGE_SOURCE=head|worktree  build the gateway from the last commit (default) or the working tree
#   IMAGE_SNAPSHOT=YYYYMMDDTHHMMSSZ  take Debian packages from snapshot.debian.org at that time
#   IMAGE_OUT=DIR, IMAGE_CACHE=DIR  output and cache folders (default image/out, image/cache)
#   IMAGE_REBUILD=1           ignore the cached trees
#   IMAGE_STRICT=1            fail when Debian's package versions differ from image/packages.lock
#   OS_KEYRING=FILE           the CA certificate(s) OS bundles must chain to (/etc/rauc/keyring.pem);
#                             default: a development CA made once in IMAGE_OUT/os-keys (image/os-keys.sh)
# shellcheck source-path=SCRIPTDIR disable=SC2016,SC2153  # hooks expand in the chroot; config.env sets the CAPS
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/config.env"

out=${IMAGE_OUT:-$here/out}
cache=${IMAGE_CACHE:-$here/cache}
source_mode=${IMAGE_SOURCE:-head}
started=$(date +%s)

log() { printf '[image %4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
die() {
    echo "image/build.sh: $*" >&2
    exit 1
}
sha() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------------------
# 0. host tools
# ---------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap's root mode, chroot, file ownership in the image)"
missing=()
for tool in mmdebstrap genimage mcopy mkfs.vfat mke2fs debugfs arch-test git python3 unshare dtc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -e /usr/bin/qemu-aarch64-static ] || [ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
    die "missing ${missing[*]}; install with:
    apt-get install --no-install-recommends mmdebstrap qemu-user-static binfmt-support genimage mtools dosfstools e2fsprogs arch-test git device-tree-compiler"
fi
# qemu-user-static registers its binfmt handlers only where binfmt_misc is mounted.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || die "cannot register qemu-aarch64 with binfmt_misc"
fi
arch-test "$ARCH" >/dev/null || die "this host cannot run $ARCH binaries (arch-test $ARCH)"

mkdir -p "$out" "$cache"

# ---------------------------------------------------------------------------------------------
# 1. base tree: Debian packages only
# ---------------------------------------------------------------------------------------------
mirror=$MIRROR
security=$SECURITY_MIRROR
if [ -n "${IMAGE_SNAPSHOT:-}" ]; then
    mirror=http://snapshot.debian.org/archive/debian/$IMAGE_SNAPSHOT
    security=http://snapshot.debian.org/archive/debian-security/$IMAGE_SNAPSHOT
fi
# shellcheck disable=SC2086  # PACKAGES is a whitespace-separated list
packages=$(printf '%s\n' $PACKAGES | sort | paste -sd, -)
sources=(
    "deb $mirror $SUITE $COMPONENTS"
    "deb $mirror $SUITE-updates $COMPONENTS"
    "deb $security $SUITE-security $COMPONENTS"
)
base_key=$( {
    echo "format=1 $SUITE $ARCH $packages $BASE_SOURCE_DATE_EPOCH"
    printf '%s\n' "${sources[@]}"
    mmdebstrap --version
    (cd "$here" && find base -type f -print0 | sort -z | xargs -0 sha256sum)
} | sha)
base_tar=$cache/base-$base_key.tar
base_pkgs=$cache/base-$base_key.packages
base_tmp=$cache/base-$base_key.tmp.tar

if [ -f "$base_tar" ] && [ "${IMAGE_REBUILD:-0}" != 1 ]; then
    log "base tree: cached ($base_tar)"
else
    log "base tree: mmdebstrap $SUITE/$ARCH under qemu-user (slow: every maintainer script is emulated)"
    mkdir -p "$cache/debs"
    rm -f "$cache"/base-*.tmp.tar
    # Documentation and translations are left out (copyright files stay, for the licences).
    # The initramfs is built once, at the end, with image/base's smaller module list (every
    # update-initramfs during the install is diverted to true: each costs minutes under qemu-user).
    SOURCE_DATE_EPOCH=$BASE_SOURCE_DATE_EPOCH nice -n 10 mmdebstrap \
        --mode=root --format=tar --variant=minbase --arch="$ARCH" \
        --include="$packages" \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --skip=essential/unlink \
        --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
        --setup-hook="sync-in '$cache/debs' /var/cache/apt/archives/" \
        --essential-hook="mkdir -p \"\$1/etc/initramfs-tools\" && cp -a '$here/base/initramfs-tools/.' \"\$1/etc/initramfs-tools/\"" \
        --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
        --essential-hook='ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
        --customize-hook='rm "$1/usr/sbin/update-initramfs"' \
        --customize-hook='chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
        --customize-hook='chroot "$1" update-initramfs -c -k all' \
        --customize-hook="sync-out /var/cache/apt/archives '$cache/debs'" \
        --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version} \${Architecture}\n' > '$base_pkgs.tmp'" \
        "$SUITE" "$base_tmp" "${sources[@]}"
    mv "$base_pkgs.tmp" "$base_pkgs"
    mv "$base_tmp" "$base_tar"
    # keep only the newest base tree (and its package list)
    find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key.*" -exec rm -rf {} +
    log "base tree: done ($(du -h "$base_tar" | cut -f1))"
fi

if [ -f "$here/packages.lock" ]; then
    if ! diff -u "$here/packages.lock" "$base_pkgs" >"$cache/packages.diff"; then
        log "base tree: Debian package versions differ from image/packages.lock (see $cache/packages.diff)"
        [ "${IMAGE_STRICT:-0}" != 1 ] || die "IMAGE_STRICT=1 and the package set drifted; update image/packages.lock on purpose"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 2. gateway layer: wheels, install.sh, customize.sh
# ---------------------------------------------------------------------------------------------
work=$(mktemp -d "$cache/work.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

src=$work/src
mkdir -p "$src"
if [ "$source_mode" = head ]; then
    git -C "$repo" archive --format=tar HEAD | tar -x -C "$src"
    git_rev=$(git -C "$repo" rev-parse HEAD)
elif [ "$source_mode" = worktree ]; then
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./image/out --exclude=./image/cache \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -x -C "$src"
    git_rev="$(git -C "$repo" rev-parse HEAD)+worktree"
else
    die "IMAGE_SOURCE must be head or worktree, not $source_mode"
fi
# Time stamp of everything the gateway layer adds: the last commit that changed what goes in, so a
# commit elsewhere in the repository leaves the wheel, the tree and the image as they were.
app_epoch=$(git -C "$repo" log -1 --format=%ct HEAD -- app hal pyproject.toml deploy image/rootfs image/customize.sh image/dt)

log "wheels: the gateway from $git_rev, dependencies for aarch64/cp311"
wheels=$work/wheelhouse
mkdir -p "$wheels"
pip=(python3 -m pip)
[ -x "$repo/.venv/bin/pip" ] && pip=("$repo/.venv/bin/pip")
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The host's pip configuration (extra indexes, find-links, constraints) must not change the image.
export PIP_CONFIG_FILE=/dev/null
SOURCE_DATE_EPOCH=$app_epoch "${pip[@]}" wheel --quiet --no-deps -w "$wheels" "$src"
gateway_whl=$(find "$wheels" -maxdepth 1 -name 'wattsmart_gateway-*.whl' | head -n1)
[ -n "$gateway_whl" ] || die "the gateway wheel was not built"
version=$(basename "$gateway_whl" | sed -n 's/^wattsmart_gateway-\([^-]*\)-.*/\1/p')
# Dependencies published only as sdists (pure Python) are built here as py3-none-any wheels.
constraints=()
[ -f "$here/requirements-aarch64.txt" ] && constraints=(-c "$here/requirements-aarch64.txt")
# shellcheck disable=SC2086  # SDIST_ONLY is a whitespace-separated list
"${pip[@]}" wheel --quiet --no-deps -w "$wheels" "${constraints[@]}" $SDIST_ONLY
"${pip[@]}" download --quiet --only-binary=:all: \
    --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
    --find-links "$wheels" "${constraints[@]}" -d "$wheels" "$gateway_whl"
(cd "$wheels" && sha256sum -- *.whl) >"$work/wheels.sha256"

ssh_keys=${SSH_AUTHORIZED_KEYS:-}
# OS bundles (RAUC): the image trusts the CA certificate only; keys stay outside the image
os_keyring=${OS_KEYRING:-}
if [ -z "$os_keyring" ]; then
    "$here/os-keys.sh" "$out/os-keys"
    os_keyring=$out/os-keys/ca.cert.pem
    log "OS bundles: development keyring $os_keyring (OS_KEYRING=FILE for the fleet's CA)"
fi
[ -s "$os_keyring" ] || die "OS_KEYRING=$os_keyring: no such file or empty"
[ -z "$ssh_keys" ] || [ -s "$ssh_keys" ] || die "SSH_AUTHORIZED_KEYS=$ssh_keys: no such file or empty"

rootfs_key=$( {
    echo "format=1 $base_key $version $app_epoch"
    cat "$work/wheels.sha256"
    (cd "$repo" && find deploy image/rootfs image/customize.sh image/dt -type f -print0 | sort -z | xargs -0 sha256sum)
    (cd "$repo" && find deploy image/rootfs -type f -perm -u+x | sort)
    [ -z "$ssh_keys" ] || cat "$ssh_keys"
    cat "$os_keyring"
} | sha)
rootfs=$cache/rootfs-$rootfs_key

if [ -d "$rootfs" ] && [ "${IMAGE_REBUILD:-0}" != 1 ]; then
    log "gateway layer: cached ($rootfs)"
else
    log "gateway layer: unpack base, install $version with deploy/install.sh under qemu-user"
    tree=$work/rootfs
    mkdir -p "$tree"
    tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$base_tar" -C "$tree"
    stage=$tree/tmp/wsg-build
    mkdir -p "$stage"
    cp -a "$src/deploy" "$stage/deploy"
    cp -a "$wheels" "$stage/wheelhouse"
    cp -a "$here/rootfs" "$stage/rootfs"
    cp "$here/customize.sh" "$stage/customize.sh"
    # Device-tree overlays, built here from their source (image/dt; dtc output is deterministic).
    mkdir -p "$stage/dt"
    for dts in "$here"/dt/*.dts; do
        dtc -@ -q -I dts -O dtb -o "$stage/dt/$(basename "$dts" .dts).dtbo" "$dts"
    done
    [ -z "$ssh_keys" ] || install -m 0600 "$ssh_keys" "$stage/authorized_keys"
    install -m 0644 "$os_keyring" "$stage/keyring.pem"
    cat >"$stage/build-info" <<EOF
IMAGE_VERSION=$version
IMAGE_GIT_REV=$git_rev
IMAGE_SUITE=$SUITE
IMAGE_BASE_KEY=$base_key
IMAGE_HOSTNAME=$IMAGE_HOSTNAME
IMAGE_DISK_SIGNATURE=$DISK_SIGNATURE
EOF
    # A private mount namespace for /proc and /dev, gone when the chroot exits (no loop devices).
    SOURCE_DATE_EPOCH=$app_epoch nice -n 10 unshare --mount --fork -- sh -ec '
        root=$1
        mount -t proc proc "$root/proc"
        mount --bind /dev "$root/dev"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" /bin/sh /tmp/wsg-build/customize.sh
    ' sh "$tree"
    rm -rf "$stage"
    # Nothing in the tree is newer than the commit: the same inputs give the same file times.
    find "$tree" -xdev -newermt "@$app_epoch" -print0 | xargs -0r touch -h -d "@$app_epoch"
    find "$cache" -maxdepth 1 -name 'rootfs-*' -exec rm -rf {} +
    mv "$tree" "$rootfs"
    log "gateway layer: done ($(du -sh "$rootfs" | cut -f1))"
fi

# ---------------------------------------------------------------------------------------------
# 3. the SD image (genimage: no mounts, no loop devices)
# ---------------------------------------------------------------------------------------------
name=wattsmart-gateway-$version-$SUITE-$ARCH
log "image: genimage -> $out/$name.img"
gid=$(awk -F: '$1 == "wattsmart-gateway" { print $3 }' "$rootfs/etc/group")
uid=$(awk -F: '$1 == "wattsmart-gateway" { print $3 }' "$rootfs/etc/passwd")
if [ -z "$uid" ] || [ -z "$gid" ]; then
    die "no wattsmart-gateway user in the tree"
fi
sed -e "s/@NAME@/$name/g" -e "s/@BOOT_SIZE@/$BOOT_SIZE/g" -e "s/@ROOT_SIZE@/$ROOT_SIZE/g" \
    -e "s/@DATA_SIZE@/$DATA_SIZE/g" -e "s/@DISK_SIGNATURE@/$DISK_SIGNATURE/g" \
    -e "s/@BOOT_VOLUME_ID@/$BOOT_VOLUME_ID/g" -e "s/@ROOT_A_UUID@/$ROOT_A_UUID/g" \
    -e "s/@ROOT_B_UUID@/$ROOT_B_UUID/g" -e "s/@DATA_UUID@/$DATA_UUID/g" \
    -e "s/@DATA_OWNER@/$uid:$gid/g" -e "s/@EPOCH@/$app_epoch/g" \
    "$here/genimage.cfg.in" >"$work/genimage.cfg"
rm -rf "$work/gi-tmp" "$work/gi-out"
mkdir -p "$work/gi-out" "$work/gi-in"
# mke2fs takes its timestamps from E2FSPROGS_FAKE_TIME; mtools from the files it copies.
E2FSPROGS_FAKE_TIME=$app_epoch SOURCE_DATE_EPOCH=$app_epoch nice -n 10 genimage \
    --config "$work/genimage.cfg" --rootpath "$rootfs" --tmppath "$work/gi-tmp" \
    --inputpath "$work/gi-in" --outputpath "$work/gi-out" >"$work/genimage.log" 2>&1 ||
    { cat "$work/genimage.log" >&2; die "genimage failed"; }
rm -rf "$work/gi-tmp"

# Publish: the image, the kernel and initrd the qemu test boots, and what went into them.
kver=$(basename "$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n1)" | sed 's/^vmlinuz-//')
[ -n "$kver" ] || die "no kernel in the tree"
rm -f "$out"/wattsmart-gateway-*.img "$out"/wattsmart-gateway-*.raucb "$out/vmlinuz" "$out/initrd.img"
mv "$work/gi-out/$name.img" "$out/$name.img"
# root_a's file system as built: what `make os-bundle` (image/os-bundle.sh) bundles for RAUC
mv "$work/gi-out/root_a.ext4" "$out/rootfs.ext4"
cp "$rootfs/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$rootfs/boot/initrd.img-$kver" "$out/initrd.img"
{
    echo "# $name"
    echo "image_version=$version"
    echo "git_rev=$git_rev"
    echo "suite=$SUITE arch=$ARCH kernel=$kver"
    echo "base_key=$base_key rootfs_key=$rootfs_key"
    echo "source_date_epoch=$app_epoch base_source_date_epoch=$BASE_SOURCE_DATE_EPOCH"
    echo "ssh=$([ -n "$ssh_keys" ] && echo "on (key only)" || echo off)"
    echo "os_keyring_sha256=$(sha256sum <"$os_keyring" | cut -d' ' -f1)"
    printf 'source: %s\n' "${sources[@]}"
    echo "## python wheels (sha256)"
    cat "$work/wheels.sha256"
    echo "## debian packages"
    cat "$base_pkgs"
} >"$out/$name.manifest"
echo "$name.img" >"$out/latest"
(cd "$out" && sha256sum "$name.img" vmlinuz initrd.img rootfs.ext4 >SHA256SUMS)
log "image: $out/$name.img ($(du -h --apparent-size "$out/$name.img" | cut -f1) apparent, $(du -h "$out/$name.img" | cut -f1) on disk)"
log "done in $(($(date +%s) - started)) s"
