#!/usr/bin/env bash
# Install the tools the observability tests use besides zfs-fuse: promtool (Debian package
# `prometheus`, to check the receiver's /metrics) and Debian's chromium (the dashboard test
# drives it with playwright-core; no browser is downloaded).
#
# Idempotent: does nothing when both are already installed. It never starts the Prometheus
# service the package ships (a temporary policy-rc.d forbids that during the install).
# Needs root and apt-get (Debian/Ubuntu).
#
# Usage: sudo bash scripts/install-test-tools.sh
set -euo pipefail

. "$(dirname "$0")/apt-install.sh"

die() { echo "install-test-tools: $*" >&2; exit 1; }

missing=()
[ -x /usr/bin/promtool ] || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-tools: promtool and chromium already installed; nothing to do"
  exit 0
fi

apt_install install-test-tools "${missing[@]}"

[ -x /usr/bin/promtool ] || die "/usr/bin/promtool is still missing after installing prometheus"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installing chromium"
echo "install-test-tools: installed ${missing[*]} ($(/usr/bin/promtool --version 2>&1 | head -1); $(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
