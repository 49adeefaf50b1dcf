# One gate for people and CI. `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Development-only distributions beside the box's package (never in its wheel): the lab (2030.5 lab
# server, demo, simulators) and the fleet's release tool.
LAB := tests/labpkg
RELEASE_TOOL := deploy/release

.PHONY: install test lint typecheck pytest run bench clean test-systemd verify-units test-browser test-flood test-audit test-site

install: $(STAMP)

$(STAMP): pyproject.toml $(LAB)/pyproject.toml $(RELEASE_TOOL)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e $(LAB) -e $(RELEASE_TOOL)
	touch $@

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check app hal tests bench $(RELEASE_TOOL)
	$(BIN)/ruff format --check app hal tests bench $(RELEASE_TOOL)
	@if command -v shellcheck >/dev/null; then shellcheck deploy/*.sh; \
	else echo "lint: shellcheck is not installed (apt-get install shellcheck); deploy/*.sh not checked"; fi

typecheck: $(STAMP)
	$(BIN)/mypy app hal
	$(BIN)/mypy -p wattsmart_lab -p wattsmart_release

pytest: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not browser"

# The conformance self-audit over the whole gateway: ~4 minutes of real time against the lab server.
test-audit: $(STAMP)
	$(BIN)/pytest -q -rP -m slow tests/app/test_audit_gateway.py

# The status page in headless Chromium at phone size (apt-get install chromium).
test-browser: $(STAMP)
	$(BIN)/pytest -q -m browser

# The deploy units under a real systemd: debootstrap (cached in /var/cache/wattsmart-gateway-test),
# systemd-nspawn boot, READY / watchdog restart / clean stop. Needs root, debootstrap, systemd-container.
test-systemd: $(STAMP)
	$(BIN)/pytest -q -rP -m slow tests/deploy

# 1,100 connections to the status page of a gateway under `ulimit -n 1024` (~45 s); prints RSS and fds.
test-flood: $(STAMP)
	$(BIN)/pytest -q -rP -m slow tests/app/test_flood.py

# A two-inverter site with a meter end to end, the export limit's fall-back included (~70 s).
test-site: $(STAMP)
	$(BIN)/pytest -q tests/app/test_site_e2e.py tests/hal/test_site.py tests/control/test_site_limit.py

# The fast unit-file checks alone (systemd-analyze verify and security, sysusers, tmpfiles, udev).
verify-units: $(STAMP)
	$(BIN)/pytest -q tests/deploy/test_units.py

# `make run SITE=1`: two inverters and a site meter on one Modbus endpoint, with an export limit.
run: $(STAMP)
	@$(BIN)/python -m wattsmart_lab.demo $(if $(SITE),--site)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The SD-card image (image/README.md). Root, Debian host; ~10 min cold, ~30 s-1 min when cached.
.PHONY: image image-test image-test-pi image-lint os-bundle image-test-ab

image: $(STAMP)
	image/build.sh

# Boots the image under qemu-system-aarch64 (TCG) and reads the guest's serial-console report.
image-test: image
	$(PYTHON) image/test/boot_test.py

# The same image on the Raspberry Pi 3's device tree (qemu -M raspi3b): GPIO through the gpiochip,
# Modbus RTU on the header UART to a simulator on the host; bytes written per day (image/README.md).
image-test-pi: image
	$(BIN)/python image/test/boot_test_pi.py

# A signed RAUC bundle of the root file system of the last `make image` (image/os-bundle.sh;
# OS_SIGNING_CERT/OS_SIGNING_KEY for the fleet's key, else the development pair in image/out/os-keys).
os-bundle: image
	image/os-bundle.sh

# OS A/B updates under qemu virt: A -> B committed, then a never-READY B rolled back to A by itself
# (image/README.md, "OS updates"; ~15-20 min on 2 shared cores).
image-test-ab: os-bundle
	$(PYTHON) image/test/ab_test.py

image-lint: $(STAMP)
	shellcheck -x image/*.sh image/config.env image/pi-gen/build.sh image/pi-gen/config \
		image/pi-gen/stage-wattsmart/prerun.sh image/pi-gen/stage-wattsmart/EXPORT_IMAGE \
		image/pi-gen/stage-wattsmart/*/*.sh image/base/initramfs-tools/hooks/* \
		image/base/initramfs-tools/scripts/local-premount/*
	shellcheck -s sh image/rootfs/usr/local/lib/wattsmart-os/* image/rootfs/etc/initramfs-tools/hooks/* \
		image/rootfs/etc/initramfs-tools/scripts/local-top/*
	$(BIN)/ruff check image/test
	$(BIN)/ruff format --check image/test
