#!/usr/bin/env bash
# Builds the browser app into dist/ with Trunk (installs the pinned web tools on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_web_tools
echo "==> trunk build --release (target dir $CARGO_TARGET_DIR)"
CARGO_BUILD_JOBS="$CARGO_BUILD_JOBS" trunk build --release=true --offline=true --locked=true index.html
python3 scripts/csp.py dist/index.html
ls -l dist/*.wasm
