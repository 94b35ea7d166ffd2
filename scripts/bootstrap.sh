#!/usr/bin/env bash
# Create .venv and install corral into it, with the extras named in $1 (e.g. test,bench).
# Works on a fresh Debian machine with only Python 3.11: installs python3-venv if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "bootstrap: need root to run: $*" >&2; return 1; fi
}

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $($PY --version 2>&1)"
    if ! "$PY" -m venv .venv 2>/dev/null; then
        echo "bootstrap: python venv support is missing; installing python3-venv"
        rm -rf .venv
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PY" -m venv .venv
    fi
fi

stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing corral${extras:+ with [$extras]} into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
    touch "$stamp"
fi
