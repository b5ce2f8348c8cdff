#!/usr/bin/env bash
# Sets up everything (web tool chain, first build) and serves the app on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/build-web.sh
PORT="${PORT:-8771}"
echo
echo "    qtlab is at:  http://127.0.0.1:$PORT/"
echo "    (WebGPU needs a current Chrome/Edge/Safari; other browsers get the CPU fallback.)"
echo
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
