#!/usr/bin/env bash
# Native CPU step, qtlab against PyTorch eager on the same reference config, interleaved so that
# both see the same machine load (issue 17). PyTorch comes from PyPI on demand into the cache
# (the PyPI wheel is the CUDA build, about 5 GB with its libraries; it runs on the CPU here);
# it is never a test dependency.
#   ./scripts/bench-vs-torch.sh [ROUNDS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS="${1:-2}"
STEPS="${2:-200}"
VENV="$QTLAB_CACHE/torchenv"
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "==> installing PyTorch into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch numpy
fi
cargo build --release -p qtlab-cli -q
Q="$CARGO_TARGET_DIR/release/qtlab"
for r in $(seq "$ROUNDS"); do
  for t in 2 1; do
    echo "-- round $r, $t thread(s)"
    "$Q" bench --backend cpu --threads "$t" --bench-steps "$STEPS" | grep -E "ms/step"
    "$VENV/bin/python" scripts/torch-bench.py --threads "$t" --steps "$STEPS"
  done
done
