#!/usr/bin/env bash
# Real OpenZFS 2.1 for the tests where OpenZFS decides the outcome (test/attacks/openzfs.test.ts):
# builds the team's zfsvm (../shared/tools/zfsvm: Debian's kernel and zfs-dkms in a QEMU VM).
# The first build on a machine takes about 8 minutes (the zfs module is compiled by dkms) and
# is cached in /var/cache/zfsvm; later runs take about 20 s. Needs root and apt (Debian).
#
# Usage: sudo bash scripts/install-zfsvm.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
zfsvm="$here/../../shared/tools/zfsvm"
[ -x "$zfsvm/build.sh" ] || { echo "install-zfsvm: $zfsvm/build.sh is missing: the team folder shared/ must sit beside the checkout" >&2; exit 1; }
if [ -f /var/cache/zfsvm/artifacts/vmlinuz ] && [ -f /var/cache/zfsvm/artifacts/initramfs.cpio.gz ] && command -v qemu-system-x86_64 >/dev/null; then
  echo "install-zfsvm: the OpenZFS VM is already built (/var/cache/zfsvm); nothing to do"
  exit 0
fi
echo "install-zfsvm: building the OpenZFS VM (about 8 minutes the first time)"
bash "$zfsvm/build.sh"
