#!/usr/bin/env bash
# Sets up everything (web tool chain, first build) and serves the app on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
PORT="${PORT:-8771}"
if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$PORT" 2>/dev/null; then
  echo "error: port $PORT is in use (another serve.sh still running?); stop it, or run PORT=8772 $0" >&2
  exit 1
fi
./scripts/build-web.sh
echo
echo "    qtlab is at:  http://127.0.0.1:$PORT/"
echo "    (WebGPU needs a current Chrome/Edge/Safari; other browsers get the CPU fallback.)"
echo
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
