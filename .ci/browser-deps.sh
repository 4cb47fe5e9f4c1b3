#!/usr/bin/env bash
# What tests/test_browser.py needs beyond `pip install -e ".[dev]"`: Debian's chromium (Playwright
# cannot download its own browsers here, so the test drives this one by its executable path),
# the libraries and fonts it renders with, and the Playwright Python package.
# Idempotent: installs only what is missing, so a second run does nothing.
set -euo pipefail

packages=(chromium fonts-liberation fonts-dejavu-core libgl1-mesa-dri)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
elif ! command -v chromium >/dev/null 2>&1; then
    echo "browser-deps: no dpkg/apt here; install Chromium yourself and set I2VKIT_CHROMIUM" \
         "to its binary for tests/test_browser.py" >&2
    exit 1
fi

if ((${#missing[@]})); then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "browser-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "browser-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python}
"$python" -c "import playwright" 2>/dev/null || "$python" -m pip install --quiet "playwright>=1.45"

echo "browser-deps: $(chromium --version 2>/dev/null || echo 'chromium: not found')"
