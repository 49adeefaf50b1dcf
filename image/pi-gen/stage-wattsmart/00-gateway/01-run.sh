#!/bin/bash -e
# pi-gen (host side): stage what the chroot step installs. files/ is filled by image/pi-gen/build.sh:
#   files/deploy/      the checkout's deploy/ (install.sh, unit, sysusers/tmpfiles/udev, watchdog)
#   files/wheelhouse/  the gateway's wheel + its aarch64 dependency wheels (offline install)
for need in files/deploy/install.sh files/wheelhouse; do
    if [ ! -e "${need}" ]; then
        echo "stage-wattsmart: ${need} is missing; build with image/pi-gen/build.sh" >&2
        exit 1
    fi
done
rm -rf "${ROOTFS_DIR}/tmp/wsg-build"
install -d -m 0755 "${ROOTFS_DIR}/tmp/wsg-build"
cp -a files/deploy files/wheelhouse "${ROOTFS_DIR}/tmp/wsg-build/"
