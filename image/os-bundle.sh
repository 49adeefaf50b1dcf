#!/usr/bin/env bash
# `make os-bundle`: a signed RAUC bundle of the root file system of the last `make image`.
#
#   image/os-bundle.sh      -> image/out/<image name>.raucb (verity format, X.509/CMS signature)
#
# The bundle holds root_a's ext4 image from the same build (build.sh keeps it as
# out/rootfs.ext4), shrunk to its content (RAUC grows it to the slot again: `resize=true`).
# It is signed with a key held outside the box; the image's keyring (/etc/rauc/keyring.pem) holds
# only the CA certificate. Then `rauc info` verifies the bundle against that keyring.
#
# Environment:
#   OS_SIGNING_CERT, OS_SIGNING_KEY  the fleet's signing certificate and key (PEM or PKCS#11 URL);
#                            default: the development pair in IMAGE_OUT/os-keys (image/os-keys.sh)
#   OS_KEYRING=FILE          the CA certificate(s) the box trusts (default IMAGE_OUT/os-keys/ca.cert.pem)
#   OS_BUNDLE_ROOTFS=FILE    the ext4 image to bundle (default IMAGE_OUT/rootfs.ext4)
#   OS_BUNDLE_VERSION=V      the bundle's version (default: the image's version)
#   OS_BUNDLE=FILE           where the bundle goes (default IMAGE_OUT/<image name>.raucb)
#   IMAGE_OUT=DIR            as for build.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${IMAGE_OUT:-$here/out}
keys=$out/os-keys
cert=${OS_SIGNING_CERT:-$keys/signing.cert.pem}
key=${OS_SIGNING_KEY:-$keys/signing.key.pem}
keyring=${OS_KEYRING:-$keys/ca.cert.pem}
rootfs=${OS_BUNDLE_ROOTFS:-$out/rootfs.ext4}
started=$(date +%s)

die() {
    echo "image/os-bundle.sh: $*" >&2
    exit 1
}
for tool in rauc mksquashfs e2fsck resize2fs; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install --no-install-recommends rauc squashfs-tools e2fsprogs"
done
[ -f "$rootfs" ] || die "no root file system image $rootfs: run \`make image\` first"
[ -f "$keyring" ] || die "no keyring $keyring (OS_KEYRING)"
compatible=$(sed -n 's/^compatible=//p' "$here/rootfs/etc/rauc/system.conf")
name=wattsmart-gateway-os
build=unknown
if [ -f "$out/latest" ]; then
    name=$(sed 's/\.img$//' "$out/latest")
    build=$(sed -n 's/^git_rev=//p' "$out/$name.manifest" 2>/dev/null || echo unknown)
fi
version=${OS_BUNDLE_VERSION:-$(sed -n 's/^image_version=//p' "$out/$name.manifest" 2>/dev/null || true)}
[ -n "$version" ] || die "no version: set OS_BUNDLE_VERSION"
bundle=${OS_BUNDLE:-$out/$name.raucb}

work=$(mktemp -d "${TMPDIR:-/tmp}/os-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp --sparse=always "$rootfs" "$work/content/rootfs.ext4"
# the smallest file system that holds the tree: less to compress, to verify and to write on the box
e2fsck -fy "$work/content/rootfs.ext4" >/dev/null 2>&1 || [ $? -le 1 ] || die "e2fsck failed on $rootfs"
resize2fs -M "$work/content/rootfs.ext4" >/dev/null 2>&1 || die "resize2fs -M failed on $rootfs"
cat >"$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
build=$build

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST
rm -f "$bundle"
nice -n 10 rauc bundle --cert="$cert" --key="$key" --keyring="$keyring" "$work/content" "$bundle" >"$work/bundle.log" 2>&1 ||
    { cat "$work/bundle.log" >&2; die "rauc bundle failed"; }
rauc info --keyring="$keyring" "$bundle" >"$work/info.log" 2>&1 ||
    { cat "$work/info.log" >&2; die "the new bundle does not verify against $keyring"; }
echo "os-bundle: $bundle ($(du -h --apparent-size "$bundle" | cut -f1); $version, $compatible), verified against $keyring in $(($(date +%s) - started)) s"
