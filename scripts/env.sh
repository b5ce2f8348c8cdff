# Shared environment for qtlab's scripts (sourced, not run).
# Build outputs and installed tools live in a cache outside the clone, so a fresh clone (and CI)
# reuses them; on a fresh machine everything is built once, only slower.
export QTLAB_CACHE="${QTLAB_CACHE:-$HOME/.cache/qtlab}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$QTLAB_CACHE/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$QTLAB_CACHE"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

# Debian packages the tests need: lavapipe (software Vulkan) so wgpu and our WGSL run without a GPU.
ensure_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Web tool chain for the app and its browser tests (see ../shared/reference/toolchain.md Part B).
# Versions are pinned: trunk 0.22 needs a newer rustc, wasm-bindgen-cli must equal Cargo.lock's
# wasm-bindgen, and Debian's binaryen 108 emits wasm that Chromium rejects at runtime.
export QTLAB_TOOLS="$QTLAB_CACHE/tools"
export QTLAB_NPM="$QTLAB_CACHE/npm"
# scripts/bin first: its wasm-opt caches the optimised wasm by input hash (an instant second serve).
export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bin:$QTLAB_TOOLS/bin:$QTLAB_NPM/node_modules/.bin:$PATH"
TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
PLAYWRIGHT_VERSION=1.65.1

ensure_web_tools() {
  rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    echo "==> installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 7 min on 2 cores, once)"
    # No --locked: its lockfile pins a webpki-roots the index cannot resolve.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$QTLAB_TOOLS" -j "$CARGO_BUILD_JOBS"
  fi
  if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
    echo "==> installing trunk $TRUNK_VERSION (about 19 min on 2 cores, once)"
    # No default features: tools come from PATH (Trunk.toml), so Trunk needs neither TLS nor its
    # update check, which drops rustls/aws-lc and its C build from the install.
    cargo install trunk --version "$TRUNK_VERSION" --locked --no-default-features --root "$QTLAB_TOOLS" -j "$CARGO_BUILD_JOBS"
  fi
  if [ ! -x "$QTLAB_NPM/node_modules/.bin/wasm-opt" ]; then
    echo "==> installing binaryen@$BINARYEN_VERSION from npm"
    npm_install "binaryen@$BINARYEN_VERSION"
  fi
}

# Only the tests drive a browser: serving the app needs neither Chromium nor Playwright.
ensure_browser_tools() {
  ensure_apt chromium
  if [ ! -d "$QTLAB_NPM/node_modules/playwright-core" ]; then
    echo "==> installing playwright-core@$PLAYWRIGHT_VERSION from npm"
    npm_install "playwright-core@$PLAYWRIGHT_VERSION"
  fi
}

npm_install() {
  mkdir -p "$QTLAB_NPM"
  [ -f "$QTLAB_NPM/package.json" ] || echo '{"private":true}' > "$QTLAB_NPM/package.json"
  (cd "$QTLAB_NPM" && npm install --no-audit --no-fund --silent "$@")
}
