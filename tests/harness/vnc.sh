#!/usr/bin/env bash
# Install what the VNC proxy's real-peer tests and benchmark need (idempotent):
#   Debian: Xvfb, x11vnc, TigerVNC Xvnc + vncpasswd, qemu-system-x86, chromium,
#           noVNC 1.3 (/usr/share/novnc), websockify (benchmark baseline), ImageMagick
#   PyPI (into the project venv): vncdotool
#   npm: playwright-core, in $SNF_TEST_VNC_NODE_DIR (default /var/tmp/synnefo-vnc-node),
#        outside the work tree so no node_modules lands in git.
# Prints the node directory on stdout (the tests read SNF_TEST_VNC_NODE_DIR or the default).
set -euo pipefail
log() { echo "[vnc] $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${VENV:-$root/.venv}
nodedir=${SNF_TEST_VNC_NODE_DIR:-/var/tmp/synnefo-vnc-node}

need_apt=()
command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb)
command -v x11vnc >/dev/null 2>&1 || need_apt+=(x11vnc)
command -v Xvnc >/dev/null 2>&1 || need_apt+=(tigervnc-standalone-server)
command -v vncpasswd >/dev/null 2>&1 || need_apt+=(tigervnc-tools)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_apt+=(qemu-system-x86)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -f /usr/share/novnc/vnc_lite.html ] || need_apt+=(novnc)
command -v websockify >/dev/null 2>&1 || need_apt+=(websockify)
command -v display >/dev/null 2>&1 || need_apt+=(imagemagick)
command -v xsetroot >/dev/null 2>&1 || need_apt+=(x11-xserver-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=900 update -qq && apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; }
fi

if ! "$venv/bin/python" -c "import vncdotool" >/dev/null 2>&1; then
  log "installing vncdotool into $venv"
  "$venv/bin/pip" install -q "vncdotool>=1.2"
fi

if [ ! -f "$nodedir/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core into $nodedir"
  mkdir -p "$nodedir"
  cp "$here/vnc/package.json" "$nodedir/package.json"
  (cd "$nodedir" && npm install --silent --no-audit --no-fund >/dev/null)
fi
cp "$here/vnc/novnc_shot.js" "$nodedir/novnc_shot.js"
echo "$nodedir"
