#!/usr/bin/env bash
# The README's first command: set up and run the local demonstration of the whole story.
# Needs root (it builds two "VPSes" as network namespaces on this machine) and installs
# what it needs with apt, and pip into .venv/ (tests/setup.sh). Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "run it as root: it creates network namespaces" >&2
  exit 2
fi
echo "== installing what the demonstration needs (apt, pip) ..."
bash tests/setup.sh
exec .venv/bin/python -m examples.demo "$@"
