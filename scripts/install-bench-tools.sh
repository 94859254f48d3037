#!/usr/bin/env bash
# Install what the WAN benchmark (bench/run.ts) and its smoke test (test/bench-smoke.test.ts)
# need besides Node: openssh-server and openssh-client (the ssh baselines run a private sshd),
# mbuffer (syncoid's pipeline), iproute2 (ip netns, ss) and procps (top, for the load record).
#
# Idempotent: does nothing when everything is installed. It never starts the system's ssh
# service (a temporary policy-rc.d forbids that during the install): the benchmark runs its
# own sshd on a private port and stops it again. Needs root and apt-get (Debian/Ubuntu).
#
# Usage: sudo bash scripts/install-bench-tools.sh
set -euo pipefail

. "$(dirname "$0")/apt-install.sh"

die() { echo "install-bench-tools: $*" >&2; exit 1; }

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v mbuffer >/dev/null 2>&1 || missing+=(mbuffer)
command -v ip >/dev/null 2>&1 && command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v top >/dev/null 2>&1 || missing+=(procps)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-bench-tools: sshd, ssh, mbuffer, ip, ss and top already installed; nothing to do"
  exit 0
fi

apt_install install-bench-tools "${missing[@]}"

[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is still missing after installing openssh-server"
command -v mbuffer >/dev/null 2>&1 || die "mbuffer is still missing after installing it"
echo "install-bench-tools: installed ${missing[*]} ($(ssh -V 2>&1 | head -1); $(mbuffer --version 2>&1 | head -1))"
