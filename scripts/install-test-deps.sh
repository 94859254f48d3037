#!/usr/bin/env bash
# Everything the test suite needs from Debian, as root: zfs-fuse (real ZFS for the end-to-end
# tests), promtool and chromium (metrics and dashboard tests), openssh-server and mbuffer (the
# benchmark smoke test). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"
bash ./install-zfs-fuse.sh
bash ./install-test-tools.sh
bash ./install-bench-tools.sh
