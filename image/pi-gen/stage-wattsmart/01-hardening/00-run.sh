#!/bin/bash -e
# pi-gen (host side): the same hardening files as the Debian image (image/rootfs, copied to files/
# by image/pi-gen/build.sh), and the Pi's boot configuration for an RS-485 gateway.
install -D -m 0644 files/sshd-10-wattsmart.conf "${ROOTFS_DIR}/etc/ssh/sshd_config.d/10-wattsmart.conf"
install -D -m 0644 files/sysctl-80-wattsmart.conf "${ROOTFS_DIR}/etc/sysctl.d/80-wattsmart.conf"
install -D -m 0644 files/journald-10-wattsmart.conf \
    "${ROOTFS_DIR}/etc/systemd/journald.conf.d/10-wattsmart.conf"

boot="${ROOTFS_DIR}/boot/firmware"
if [ ! -f "${boot}/config.txt" ]; then
    boot="${ROOTFS_DIR}/boot" # releases before bookworm
fi
# The PL011 UART (/dev/ttyAMA0 on GPIO 14/15) is the RS-485 line to the inverter: Bluetooth off it,
# UART on, and no kernel console on it (its output would land on the Modbus bus).
if ! grep -q '^# wattsmart-gateway' "${boot}/config.txt"; then
    cat >>"${boot}/config.txt" <<'CONFIG'

# wattsmart-gateway
[all]
enable_uart=1
dtoverlay=disable-bt
dtparam=watchdog=on
CONFIG
fi
sed -i -e 's/console=serial0,[0-9]* //' -e 's/console=ttyAMA0,[0-9]* //' "${boot}/cmdline.txt"

# The first user's password is a throw-away pi-gen insisted on (see ../../config): lock it.
on_chroot <<EOF
passwd --lock "${FIRST_USER_NAME}" >/dev/null
EOF
