#!/usr/bin/env bash
# The native test suite on musl: native/test linked statically against
# musl with the prebuilds' Zig toolchain (scripts/prebuild/musl-tests.mjs)
# and run here, so that the code of the musl prebuilds
# (prebuilds/linux-<arch>/simple-ipc.musl.node) is proved on musl's libc
# itself; a static program needs no Alpine system to run. Then the x64
# musl prebuild is loaded by musl's own dynamic loader (Debian's musl-tools)
# from a C program standing in for Node.js, which calls its Node-API
# version entry point. Node.js itself on musl cannot run here; the file's
# imports are checked by check-binaries.mjs and node-gyp-build's choice of
# it by test/musl-prebuild.test.ts. x64 only; add arm64 (under
# qemu-aarch64) with `node scripts/prebuild/musl-tests.mjs x64 arm64`.
set -u
cd "$(dirname "$0")/../.."
out=$(mktemp)
node scripts/prebuild/musl-tests.mjs x64 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
rm -f "$out"
if [ -n "$line" ]; then
  p=${line%% passed*}
  f=${line##*passed, }
  f=${f%% failed}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "STEP-RESULT: $p passed, $f failed"
else
  echo "STEP-RESULT: 0 passed, 1 failed"
fi
exit "$rc"
