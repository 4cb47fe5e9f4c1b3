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
    # Another apt/dpkg (unattended-upgrades on a fresh machine) may hold the lock: wait for
    # it, polling, up to APT_LOCK_WAIT seconds, instead of failing at once. apt's own
    # DPkg::Lock::Timeout covers the dpkg lock; the loop also covers the lists lock.
    wait_s=${APT_LOCK_WAIT:-300}
    apt_retry() {
        local deadline=$((SECONDS + wait_s)) log
        log=$(mktemp)
        until "${sudo[@]}" apt-get -o DPkg::Lock::Timeout="$wait_s" "$@" 2>"$log"; do
            if ! grep -qiE "could not get lock|unable to acquire|is another process using it" \
                "$log"; then
                cat "$log" >&2
                rm -f "$log"
                return 1
            fi
            if ((SECONDS >= deadline)); then
                echo "browser-deps: apt is still locked by another process after ${wait_s}s;" \
                     "let it finish (or raise APT_LOCK_WAIT) and run .ci/browser-deps.sh again" >&2
                rm -f "$log"
                return 1
            fi
            echo "browser-deps: waiting for another apt/dpkg process to release its lock..." >&2
            sleep 5
        done
        rm -f "$log"
    }
    apt_retry update -qq
    apt_retry install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python}
"$python" -c "import playwright" 2>/dev/null || "$python" -m pip install --quiet "playwright>=1.45"

echo "browser-deps: $(chromium --version 2>/dev/null || echo 'chromium: not found')"
