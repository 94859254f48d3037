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

export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

die() { echo "install-test-tools: $*" >&2; exit 1; }

missing=()
[ -x /usr/bin/promtool ] || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-tools: promtool and chromium already installed; nothing to do"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root to install ${missing[*]} (run: sudo bash scripts/install-test-tools.sh)"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} with this system's package manager (Debian/Ubuntu package names: ${missing[*]})"

# Keep the prometheus package's postinst from starting its service (exit 101 = forbidden).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from zferry scripts/install-test-tools.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-tools: installing ${missing[*]}"
apt-get update </dev/null || die "'apt-get update' failed (see output above; check network and apt sources)"
apt-get install -y --no-install-recommends "${missing[@]}" </dev/null \
  || die "'apt-get install -y ${missing[*]}' failed (see output above)"

[ -x /usr/bin/promtool ] || die "/usr/bin/promtool is still missing after installing prometheus"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installing chromium"
echo "install-test-tools: installed ${missing[*]} ($(/usr/bin/promtool --version 2>&1 | head -1); $(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
