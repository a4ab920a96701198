#!/usr/bin/env bash
# The whole test suite, on a fresh machine too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
