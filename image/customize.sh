#!/bin/sh
# Runs INSIDE the arm64 tree (chroot under qemu-user), as root, from image/build.sh.
# /tmp/wsg-build holds: deploy/ (from the checkout), wheelhouse/ (the gateway's wheel + its
# aarch64 dependencies), rootfs/ (image/rootfs overlay), build-info, and authorized_keys if SSH
# is wanted. Everything here must be safe for a box that nobody has logged into yet.
set -eu
b=/tmp/wsg-build
# shellcheck source=/dev/null
. "$b/build-info"
export DEBIAN_FRONTEND=noninteractive

say() { echo "customize: $*"; }

# 1. The gateway: a versioned release venv + `current` link, units, user, state folders.
#    Same installer as on a running box. Offline: pip sees only the wheelhouse.
wheel=$(find "$b/wheelhouse" -maxdepth 1 -name 'wattsmart_gateway-*.whl' | head -n1)
sh "$b/deploy/install.sh" --wheelhouse "$b/wheelhouse" --no-start "$wheel"
test -x /opt/wattsmart-gateway/current/bin/wattsmart-gateway

# 2. The image's own files (fstab, network, journald, sysctl, sshd policy, first-boot units).
cp -a "$b/rootfs/." /
chown -R root:root /etc/fstab /etc/systemd /etc/sysctl.d /etc/ssh/sshd_config.d /usr/local /etc/rauc \
    /etc/initramfs-tools
mkdir -p /var/lib/wattsmart-gateway /boot/firmware

# 3. Identity of the box: set on first boot, never baked in.
echo "$IMAGE_HOSTNAME" >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    "$IMAGE_HOSTNAME" >/etc/hosts
# systemd generates the machine id on the first boot (and runs ConditionFirstBoot= units).
echo uninitialized >/etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
rm -f /etc/ssh/ssh_host_*

# 4. Accounts: no password anywhere. root is locked; there is no other login user.
passwd --lock root >/dev/null
if awk -F: '$2 !~ /^[!*]/ && $2 != "" { bad = 1 } END { exit !bad }' /etc/shadow; then
    echo "customize: an account has a usable password" >&2
    exit 1
fi
if awk -F: '$2 == "" { bad = 1 } END { exit !bad }' /etc/shadow; then
    echo "customize: an account has an empty password" >&2
    exit 1
fi

# 5. SSH: off, unless keys were given at build time (then key-only root login).
if [ -s "$b/authorized_keys" ]; then
    install -d -m 0700 /root/.ssh
    install -m 0600 "$b/authorized_keys" /root/.ssh/authorized_keys
    systemctl enable ssh.service wattsmart-ssh-hostkeys.service
    say "SSH enabled (key only) for $(wc -l </root/.ssh/authorized_keys) key(s)"
else
    systemctl disable ssh.service ssh.socket 2>/dev/null || true
    systemctl mask ssh.service ssh.socket
    say "SSH off (no SSH_AUTHORIZED_KEYS at build time)"
fi

# 6. Services: network by DHCP, DNS, NTP (no RTC on a Pi).
systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
# An appliance does not fetch package lists on its own (traffic, flash wear); updates are images/OTA.
systemctl disable apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
systemctl mask apt-daily.service apt-daily-upgrade.service apt-daily.timer apt-daily-upgrade.timer
# No debug shell, no Ctrl-Alt-Del reboot from a keyboard someone plugs in.
systemctl mask debug-shell.service ctrl-alt-del.target

# 7. Raspberry Pi boot files: Debian's raspi-firmware copies the kernel, initrd and DTBs to
#    /boot/firmware and writes config.txt and cmdline.txt. Slot A is the root file system.
#    The kernel console stays on HDMI (tty0): the header UART is for the RS-485 line.
if ! grep -q '^# wattsmart-gateway' /etc/default/raspi-firmware; then
    cat >>/etc/default/raspi-firmware <<'EOF'

# wattsmart-gateway: boot slot A by label (A/B-ready), console on HDMI only.
ROOTPART="LABEL=root_a"
CONSOLES="tty0"
EOF
fi
kver=$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n1 | sed 's|^/boot/vmlinuz-||')
DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$kver" "/boot/vmlinuz-$kver"
test -s /boot/firmware/cmdline.txt && test -s /boot/firmware/config.txt
grep -q 'root=LABEL=root_a' /boot/firmware/cmdline.txt
# The overlays built from image/dt (config.txt names them: image/rootfs/etc/default/raspi-firmware-custom).
install -d /boot/firmware/overlays
install -m 0644 "$b"/dt/*.dtbo /boot/firmware/overlays/
grep -q '^dtoverlay=wattsmart-uart0-header$' /boot/firmware/config.txt

# 8. OS updates (RAUC, A/B root slots; image/README.md "OS updates"): the slots by partition, the
#    fleet's CA certificate as the keyring (never a key), slot A primary with B empty (bad), the
#    slot selector in the initramfs, and the boot-time trial/commit unit.
partuuid=$(printf '%08x' "$IMAGE_DISK_SIGNATURE")
sed -i "s/@PARTUUID@/$partuuid/g" /etc/rauc/system.conf
install -m 0644 "$b/keyring.pem" /etc/rauc/keyring.pem
printf 'ORDER=A B\nA_LEFT=3\nB_LEFT=0\n' >/boot/firmware/wattsmart-ab.env
systemctl enable wattsmart-os-update.service
update-initramfs -u -k all
test -s /boot/firmware/wattsmart-ab.env

# 9. What is in this image, for support and for the OTA's compatibility checks.
cat >/etc/wattsmart-image <<EOF
IMAGE_VERSION=$IMAGE_VERSION
IMAGE_GIT_REV=$IMAGE_GIT_REV
IMAGE_SUITE=$IMAGE_SUITE
IMAGE_BASE_KEY=$IMAGE_BASE_KEY
EOF

# 10. Leave nothing of the build behind.
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /root/.cache /var/tmp/*
say "done: wattsmart-gateway $IMAGE_VERSION ($IMAGE_GIT_REV)"
