#!/usr/bin/env bash
# The vitest suite again, with two CPU-burning processes beside it: the
# tests must not depend on idle cores (no tight timing margins, no
# unhandled rejections when a peer is slow). The burners run at the same
# priority as the tests, are bounded in time (timeout) and are killed when
# the step ends, whatever the way it ends.
set -u
cd "$(dirname "$0")/../.."

burner_seconds=${LOAD_BURNER_SECONDS:-600}
burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null; done
  burners=()
}
trap stop_burners EXIT
trap 'stop_burners; exit 130' INT TERM

for _ in 1 2; do
  timeout "$burner_seconds" node -e 'for (;;) {}' &
  burners+=($!)
done
echo "burners: ${burners[*]} (at most ${burner_seconds} s)"

out=$(mktemp)
timeout 900 npx vitest run --reporter=default --reporter=json --outputFile.json="$out"
rc=$?
stop_burners
node scripts/test-steps/vitest-step-result.cjs "$out" 2>/dev/null || echo "STEP-RESULT: 0 passed, 1 failed"
rm -f "$out"
exit $rc
