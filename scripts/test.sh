#!/usr/bin/env bash
# Sets up everything the tests need and runs all of them: the Rust tests (core, CLI, app logic,
# wgpu on lavapipe, a 10,000-step native soak), the browser end-to-end tests and a browser soak.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_apt mesa-vulkan-drivers libvulkan1
echo "==> cargo test (release profile; target dir $CARGO_TARGET_DIR)"
# Release: Burn in debug is too slow to train, and the release deps are shared with the CLI.
cargo test --release --workspace --locked -j "$CARGO_BUILD_JOBS"
echo "==> cargo doc: no broken intra-doc links"
RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links" cargo doc --release --workspace --no-deps --locked -j "$CARGO_BUILD_JOBS"
./scripts/e2e.sh
echo "==> browser soak: 2,000 steps of the spec defaults (BERT, gated beside vanilla) on the CPU fallback, memory bounded"
QTLAB_NPM="$QTLAB_NPM" node e2e/soak.mjs dist 2000 64 64
