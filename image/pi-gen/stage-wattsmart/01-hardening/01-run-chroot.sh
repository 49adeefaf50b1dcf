#!/bin/bash -e
# pi-gen (inside the image): nothing listens or fetches that the gateway does not need.
# Bluetooth is off the UART (config.txt); its services are not needed either.
systemctl disable hciuart.service bluetooth.service 2>/dev/null || true
# An appliance is updated by images and the gateway's OTA, not by apt on its own.
systemctl disable apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
systemctl mask debug-shell.service ctrl-alt-del.target
# SSH host keys are made on the box's first boot (Raspberry Pi OS regenerates them), never shared.
rm -f /etc/ssh/ssh_host_*
# No password on any account: root is locked and FIRST_USER_PASS is unset.
passwd --lock root >/dev/null
if awk -F: '$2 !~ /^[!*]/ { bad = 1 } END { exit !bad }' /etc/shadow; then
    echo "stage-wattsmart: an account has a usable or empty password" >&2
    exit 1
fi
