# Sourced by the install-*.sh scripts: installs the Debian packages a script found missing,
# as root, without letting any package start its service.
#
#   apt_install <script name> <package>...
#
# Dies with one line when not root, without apt-get, or when apt-get fails.

export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

apt_install() {
  local me=$1
  shift
  die() { echo "$me: $*" >&2; exit 1; }
  [ "$(id -u)" -eq 0 ] || die "must run as root to install $* (run: sudo bash scripts/$me.sh)"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with this system's package manager (Debian/Ubuntu package names: $*)"

  # Keep the packages' postinst from starting their services: invoke-rc.d and
  # deb-systemd-invoke both obey policy-rc.d (exit 101 = action forbidden).
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from zferry scripts/%s.sh\nexit 101\n' "$me" >"$policy"
    chmod 755 "$policy"
    trap "rm -f '$policy'" EXIT
  fi

  export DEBIAN_FRONTEND=noninteractive
  echo "$me: installing $*"
  apt-get update </dev/null || die "'apt-get update' failed (see output above; check network and apt sources)"
  apt-get install -y --no-install-recommends "$@" </dev/null || die "'apt-get install -y $*' failed (see output above)"
}
