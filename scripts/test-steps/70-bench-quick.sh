#!/usr/bin/env bash
# Benchmark smoke test: `npm run bench -- --quick` (under a minute). It
# fails only if something breaks (a process dies, a request fails), never
# on speed; the figures of a quick run are not for comparison. It runs
# Git's test-tool comparison too when the test-tool exists (GIT_TEST_TOOL
# or the default output of bench/git/build-test-tool.sh); CI does not
# build it, so there that part is skipped with a message.
set -u
cd "$(dirname "$0")/../.."
if timeout 300 node bench/run.mjs --quick; then
  echo "STEP-RESULT: 1 passed, 0 failed"
else
  echo "STEP-RESULT: 0 passed, 1 failed"
  exit 1
fi
