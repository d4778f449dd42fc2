#!/usr/bin/env bash
# Short soak (scripts/soak.mjs): at least 20000 mixed requests over four
# server lifetimes; after every close descriptors and threads must be back
# where they started, the live JS heap and Buffers too, and RSS must level
# off rather than grow with every lifetime (RSS itself depends on how busy
# the machine is: see the script). `npm run soak -- --seconds=N` runs a
# longer one.
set -u
cd "$(dirname "$0")/../.."
log=$(mktemp)
timeout 600 node --expose-gc scripts/soak.mjs --seconds="${SOAK_SECONDS:-10}" --min-requests=20000 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
rm -f "$log"
if [ -n "$line" ]; then
  p=${line%% passed*}
  f=${line##*, }
  f=${f%% failed}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "STEP-RESULT: $p passed, $f failed"
else
  echo "STEP-RESULT: 0 passed, 1 failed"
fi
exit $rc
