#!/usr/bin/env bash
# Prepare a fresh machine: Graphviz's `dot` and a virtualenv in .venv with archdsl and its
# test dependencies. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Graphviz (dot)"
        (apt-get install -y -qq graphviz >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq graphviz >/dev/null; }) \
            || echo "setup: could not install Graphviz; diagrams fall back to .dot files"
    else
        echo "setup: Graphviz's dot is missing; install it (apt-get install graphviz) for SVG/PNG/PDF diagrams"
    fi
fi

stamp=.venv/.archdsl-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: creating .venv (torch, torchvision, timm, ...; a few minutes the first time)"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import archdsl, torch, torchvision, timm" || { echo "setup: install failed"; exit 1; }
    echo "$want" > "$stamp"
fi
