#!/bin/sh
# Install Debian's Chromium for the web app's browser tests (Playwright drives it; Playwright's own browser
# download is not used, so tests run offline). Idempotent: does nothing when chromium is already there.
set -eu

if command -v chromium >/dev/null 2>&1; then
    echo "install-browser: chromium already installed at $(command -v chromium)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-browser: chromium is missing and this is not root (no sudo): run as root" \
         "'apt-get update && apt-get install -y chromium'" >&2
    exit 1
fi

echo "install-browser: installing Debian's chromium with apt-get"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
echo "install-browser: installed chromium at $(command -v chromium)"
