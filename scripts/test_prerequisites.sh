#!/usr/bin/env bash
# What `make test` needs besides the Python packages it installs itself: Node.js with npm (for
# asl-validator) and Chromium (the dashboard test drives it headless). Chromium is installed with
# apt-get where this machine allows it (as root, or through sudo without a password prompt); what is
# still missing is named in one line, before the long test run starts rather than after it.
set -euo pipefail

chromium=${EVENTPIPE_CHROMIUM:-/usr/bin/chromium}
missing=()

if [ ! -x "$chromium" ] && [ "$chromium" = /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        sudo=(unavailable)
    fi
    if [ "${sudo[*]-}" != unavailable ]; then
        echo "make test: installing Chromium for the dashboard test (apt-get install chromium)" >&2
        "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium \
            >/dev/null 2>&1 || true
    fi
fi

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=("Node.js with npm")
[ -x "$chromium" ] || missing+=("Chromium at $chromium (apt-get install chromium, or set EVENTPIPE_CHROMIUM)")

if [ ${#missing[@]} -gt 0 ]; then
    joined=$(printf '%s; ' "${missing[@]}")
    echo "make test: missing ${joined%; }" >&2
    exit 1
fi
