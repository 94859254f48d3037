#!/usr/bin/env bash
# Install Debian's zfs-fuse (the ZFS stand-in used by zferry's end-to-end tests) and openssl.
#
# Idempotent: does nothing when both are already on PATH. It never starts the zfs-fuse
# daemon: test/helpers/zfs-fuse.ts starts it for a test run and stops it afterwards.
# (The Debian package's postinst would start its service; a temporary policy-rc.d
# forbids that during the install.) Needs root and apt-get (Debian/Ubuntu).
#
# Usage: sudo bash scripts/install-zfs-fuse.sh
set -euo pipefail

# zfs-fuse lives in /usr/sbin, which is not always on PATH (sudo, CI shells): apt-install.sh adds it.
. "$(dirname "$0")/apt-install.sh"

die() { echo "install-zfs-fuse: $*" >&2; exit 1; }

# pids of running zfs-fuse processes (no procps dependency)
zfs_fuse_pids() {
  local f
  for f in /proc/[0-9]*/comm; do
    [ "$(cat "$f" 2>/dev/null || true)" = "zfs-fuse" ] && { f=${f#/proc/}; echo "${f%/comm}"; }
  done
  return 0
}

missing=()
command -v zfs-fuse >/dev/null 2>&1 || missing+=(zfs-fuse)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-zfs-fuse: zfs-fuse and openssl already installed ($(command -v zfs-fuse), $(command -v openssl)); nothing to do"
  exit 0
fi

daemons_before="$(zfs_fuse_pids)"

apt_install install-zfs-fuse "${missing[@]}"

for bin in "${missing[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || die "'$bin' is still not on PATH after installing it"
done

# If an existing policy-rc.d let the service start anyway, stop it: the tests own the daemon.
if [ -z "$daemons_before" ] && [ -n "$(zfs_fuse_pids)" ]; then
  echo "install-zfs-fuse: the package started a zfs-fuse daemon; stopping it"
  if [ -d /run/systemd/system ]; then systemctl stop zfs-fuse.service || true; fi
  [ -z "$(zfs_fuse_pids)" ] || /etc/init.d/zfs-fuse stop || true
fi

echo "install-zfs-fuse: installed ${missing[*]} ($(command -v zfs-fuse), $(command -v openssl))"
