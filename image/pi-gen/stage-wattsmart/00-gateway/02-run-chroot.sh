#!/bin/bash -e
# pi-gen (inside the image): the same release layout as the Debian image and a running box:
# /opt/wattsmart-gateway/releases/<version> + current, units, user, state folders.
# --system-site-packages: on Raspberry Pi OS `import RPi.GPIO` is python3-rpi-lgpio (works on Pi 5);
# the wheelhouse has no RPi.GPIO of its own that could shadow it.
b=/tmp/wsg-build
wheel=$(find "${b}/wheelhouse" -maxdepth 1 -name 'wattsmart_gateway-*.whl' | head -n1)
if [ -z "${wheel}" ]; then
    echo "stage-wattsmart: no gateway wheel in the wheelhouse" >&2
    exit 1
fi
sh "${b}/deploy/install.sh" --system-site-packages --wheelhouse "${b}/wheelhouse" --no-start "${wheel}"
test -x /opt/wattsmart-gateway/current/bin/wattsmart-gateway
rm -rf "${b}"
