#!/usr/bin/env bash
# Everything the test suite needs from Debian, as root: zfs-fuse (real ZFS for the end-to-end
# tests), promtool and chromium (metrics and dashboard tests), openssh-server and mbuffer (the
# benchmark smoke test), and the OpenZFS 2.1 VM (attack tests on real OpenZFS; ~8 minutes the
# first time on a machine, cached after). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"
bash ./install-zfs-fuse.sh
bash ./install-test-tools.sh
bash ./install-bench-tools.sh
bash ./install-zfsvm.sh
