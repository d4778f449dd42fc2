#!/usr/bin/env bash
# npm run build:win -- cross-builds the Windows addon with MinGW-w64 into
# prebuilds/win32-x64/simple-ipc.node (static; Node-API imported from
# node.exe through a delay-load import library made from node-api-headers'
# .def). Extra arguments are make targets (test-helper: the test suite's
# Win32 probe addon). Installs MinGW-w64 from Debian if missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

ensure_mingw
fetch_npm node-api-headers "$NODE_API_HEADERS_VERSION" "$NODE_API_HEADERS_SHA256" "$DEPS/node-api-headers"
if [ ! -f node_modules/node-addon-api/napi.h ]; then
  log "node_modules/node-addon-api is missing: run npm install first"
  exit 1
fi
# The same sources and defines as a native Windows build: binding.gyp's
# common lists plus its OS=='win' condition.
gyp() { node scripts/build/sources.mjs "$1" win | tr '\n' ' '; }
started=$SECONDS
# Paths relative to the checkout: ld orders import sections by input path,
# and the bytes must not depend on where the repository is.
make -f scripts/win/Makefile -j"${JOBS:-2}" --no-print-directory \
  NAH="${DEPS#"$ROOT"/}/node-api-headers" OUT="${WIN_BUILD#"$ROOT"/}" PREBUILD="$PREBUILD" \
  SOURCES="$(gyp sources)" GYP_DEFINES="$(gyp defines)" all "$@"
log "built $PREBUILD ($(stat -c %s "$PREBUILD") bytes, sha256 $(sha256sum "$PREBUILD" | cut -c1-16)...) in $((SECONDS - started)) s"
