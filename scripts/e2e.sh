#!/usr/bin/env bash
# Builds the app and runs the end-to-end tests in headless Chromium (WebGPU on SwiftShader
# when there is no GPU). Screenshots land in out/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/build-web.sh
ensure_browser_tools
# Every kernel variant as the code fills its templates, for the browser's WGSL compile test.
# Built with the whole workspace's feature set, as `cargo test --workspace` builds it, so the test
# run's dependencies are reused (`cargo run -p qtlab-cli` unifies features per package and rebuilt
# them, 3 minutes).
cargo build --release --locked -q -j "$CARGO_BUILD_JOBS" --workspace --bin qtlab
"$CARGO_TARGET_DIR/release/qtlab" shaders out/shaders > /dev/null
echo "==> browser tests (chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
QTLAB_NPM="$QTLAB_NPM" node e2e/app.test.mjs dist
