#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine (run as root):
# the real servers the integration tests start (PowerDNS, BIND, restic, sshd, PostgreSQL,
# nftables for real outages), and a virtual environment of the project's own (.venv/) with
# the project and its test extras (moto, SeaweedFS, ...): Debian 12's python3 refuses
# `pip install` outside one. Then: .venv/bin/python -m pytest -q tests
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pdns-server pdns-backend-sqlite3 bind9 bind9utils restic openssh-server openssh-client
  sqlite3 nftables iproute2 iputils-ping postgresql procps
  chromium prometheus
  systemd util-linux  # systemd-analyze checks the shipped units; setpriv runs the agent hardened
  etcd-server etcd-client
)
# chromium: pages and reports are opened headless, as a person sees them; prometheus:
# its promtool checks and unit-tests the alert rules in examples/prometheus/.
# Debian's python3 makes virtual environments only with python3-venv installed.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  APT_PACKAGES+=(python3-venv)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/setup.sh: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d: the packages must not start their system services; fixtures start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# Debian starts these on install where it can; the tests run their own instances.
for svc in pdns named bind9 ssh postgresql prometheus etcd; do
  (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
done

VENV="${FAILOVER_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
