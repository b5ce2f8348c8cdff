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
