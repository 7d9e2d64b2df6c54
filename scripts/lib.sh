# Shared by the scripts: where cargo puts things, and the one-time setup every script needs.
# Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Keep the build cache outside the clone when the caller says so (CI shares one across runs).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
# Plugins and test guests land here; the host's tests and benchmarks read WARDEN_WASM_DIR.
export WARDEN_WASM_DIR="${WARDEN_WASM_DIR:-$TARGET_DIR/wasm32-wasip2/wasm}"

# The Python that builds Python plugins (componentize-py) and runs the Python SDK's tests: a virtual
# environment under the target directory with guest-sdk/python/requirements.txt installed.
export WARDEN_PYTHON="${WARDEN_PYTHON:-$TARGET_DIR/python-venv/bin/python}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_target() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        say "installing the wasm32-wasip2 Rust target (once)"
        rustup target add wasm32-wasip2
    fi
}

# The stock minisign tool: the signing tests check that our signatures interoperate with it.
ensure_minisign() {
    if ! command -v minisign >/dev/null 2>&1; then
        say "installing Debian's minisign package (once)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get install -y -q minisign >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q minisign >/dev/null; }
    fi
}

# Debian's Chromium and chromedriver: the web pages' tests drive a real headless browser (tests/e2e/pages.rs).
ensure_chromium() {
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        say "installing Debian's chromium and chromium-driver packages (once)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get install -y -q chromium chromium-driver >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
    fi
}

# cargo-fuzz, for the fuzz targets in host/fuzz (libFuzzer needs a C++ compiler, which the machine has).
# Its -Z flags run on the stable toolchain with RUSTC_BOOTSTRAP=1 (set by the callers).
ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz from crates.io (once)"
        cargo install --locked cargo-fuzz --version 0.13.2
    fi
}

# The virtual environment WARDEN_PYTHON lives in, with guest-sdk/python/requirements.txt installed (from
# PyPI, once, and again when the requirements change).
ensure_python_tools() {
    local venv="$TARGET_DIR/python-venv" wanted="$ROOT/guest-sdk/python/requirements.txt"
    if [ ! -x "$venv/bin/python" ] || ! cmp -s "$wanted" "$venv/requirements.txt"; then
        say "installing the Python plugin tools into $venv (componentize-py, msgpack, pytest from PyPI)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$wanted"
        cp "$wanted" "$venv/requirements.txt"
    fi
}

# The JavaScript SDK's tools (esbuild, componentize-js, msgpack) from npm, with `npm ci` from the committed
# lockfile, in guest-sdk/js/node_modules; and each JavaScript plugin's link to the SDK (`npm ci` in its
# directory). Again only when a lockfile changed.
ensure_js_tools() {
    local dir
    for dir in guest-sdk/js plugins/*/; do
        dir="${dir%/}"
        [ -f "$dir/package-lock.json" ] || continue
        if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
            say "installing $dir's npm packages (npm ci, from its lockfile)"
            (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        fi
    done
}
