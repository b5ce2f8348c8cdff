#!/usr/bin/env bash
# Sets up and starts qtlab. Until the browser app lands (issue "The browser app"), this builds
# the native CLI and runs a short demo: vanilla vs gated attention on the built-in corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked -p qtlab-cli -j "$CARGO_BUILD_JOBS"
bin="$CARGO_TARGET_DIR/release/qtlab"
mkdir -p out
for attn in vanilla gated clipped; do
  echo "==> $attn"
  "$bin" train --model bert --attn "$attn" --steps 300 --out "out/demo-$attn.json"
done
echo "records written to out/demo-*.json; the browser app is not built yet"
