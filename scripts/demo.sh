#!/usr/bin/env bash
# The main job: check, compile, summarize and draw specs/resnet50.arch (outputs in out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
A=.venv/bin/archdsl
mkdir -p out
$A check specs/resnet50.arch
$A compile specs/resnet50.arch -o out/resnet50.py
$A summary specs/resnet50.arch --depth 2
$A render specs/resnet50.arch -o out/resnet50.svg
$A render specs/resnet50.arch -o out/resnet50.png
echo "wrote out/resnet50.py, out/resnet50.svg, out/resnet50.png"
