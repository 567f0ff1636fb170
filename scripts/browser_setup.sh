#!/usr/bin/env bash
# The browser test's tools: Debian's Chromium (apt) and Playwright's
# playwright-core (npm, pinned) in the tool cache. Prints the node_modules
# folder on its last line. Exits 3, with the reason, when either cannot be
# installed: the caller says the browser test was skipped and why.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
PLAYWRIGHT_CORE_VERSION=1.65.1
chromium="${CHESTCAM_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "[browser] installing Debian's chromium (apt-get)" >&2
  if ! command -v apt-get > /dev/null; then
    echo "SKIP: no $chromium and no apt-get to install Debian's chromium"; exit 3
  fi
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  if ! $as_root apt-get install -y -q chromium > /tmp/chestcam-apt.log 2>&1; then
    $as_root apt-get update -q >> /tmp/chestcam-apt.log 2>&1
    if ! $as_root apt-get install -y -q chromium >> /tmp/chestcam-apt.log 2>&1; then
      echo "SKIP: apt-get could not install chromium: $(tail -1 /tmp/chestcam-apt.log)"; exit 3
    fi
  fi
fi
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  echo "SKIP: node and npm are needed for playwright-core"; exit 3
fi
nm="$CHESTCAM_TOOLS/node-playwright-core-$PLAYWRIGHT_CORE_VERSION"
if [ ! -f "$nm/node_modules/playwright-core/package.json" ]; then
  echo "[browser] installing playwright-core $PLAYWRIGHT_CORE_VERSION into $nm" >&2
  mkdir -p "$nm.tmp"
  if ! npm install --silent --no-audit --no-fund --prefix "$nm.tmp" "playwright-core@$PLAYWRIGHT_CORE_VERSION" > /tmp/chestcam-npm.log 2>&1; then
    echo "SKIP: npm could not install playwright-core: $(tail -1 /tmp/chestcam-npm.log)"; exit 3
  fi
  rm -rf "$nm" && mv "$nm.tmp" "$nm"
fi
echo "$nm/node_modules"
