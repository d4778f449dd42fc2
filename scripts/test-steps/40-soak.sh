#!/usr/bin/env bash
# Short soak (scripts/soak.mjs): at least 20000 mixed requests over four
# server lifetimes; after every close descriptors and threads must be back
# where they started, the live JS heap and Buffers too, and RSS must level
# off rather than grow with every lifetime (RSS itself depends on how busy
# the machine is: see the script). `npm run soak -- --seconds=N` runs a
# longer one.
#
# MALLOC_ARENA_MAX=2: glibc otherwise gives each thread that finds an arena
# locked an arena of its own (up to 8 per core), and keeps what those hold
# after free(). On a busy CI machine that alone raised the native RSS floor
# by 35 MB from the first server lifetime to the second and a few MB per
# lifetime after (45.7 -> 80.0 -> 83.5 -> 85.4 MB, with the live JS heap
# and Buffers unchanged), which the leak check cannot tell from a leak.
# Capping the arenas keeps the allocator's retention bounded, so what is
# left to grow with every lifetime is what a leak would grow. Six
# lifetimes give each half of the comparison three floors.
set -u
cd "$(dirname "$0")/../.."
log=$(mktemp)
MALLOC_ARENA_MAX=2 timeout 600 node --expose-gc scripts/soak.mjs --seconds="${SOAK_SECONDS:-10}" --min-requests=20000 --rounds=6 2>&1 | tee "$log"
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
