#!/usr/bin/env bash
# The Windows named-pipe transport: cross-built with MinGW-w64 and tested
# under Wine (npm run test:win, which installs MinGW-w64 and Wine from
# Debian if they are missing). Tests that need real Windows are reported
# as skipped, with the reason.
set -u
cd "$(dirname "$0")/../.."
out=$(mktemp)
npm run --silent test:win 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^windows: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -1)
rm -f "$out"
if [ -n "$line" ]; then
  echo "STEP-RESULT: ${line#windows: }"
else
  echo "STEP-RESULT: 0 passed, 1 failed"
fi
exit "$rc"
