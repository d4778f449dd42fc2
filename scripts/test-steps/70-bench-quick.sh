#!/usr/bin/env bash
# Benchmark smoke test, and the benchmark's own tests.
#  - node --test bench/test/: the net baseline, the C reference and the
#    Git reference helpers the figures rest on (each test counts; tests
#    that need Git's test-tool are skipped when it is missing).
#  - `npm run bench -- --quick` (under a minute): fails only if something
#    breaks (a process dies, a request fails), never on speed; the
#    figures of a quick run are not for comparison. It counts as one test,
#    and the Git comparison as another: passed when it ran, skipped when
#    the test-tool is missing (GIT_TEST_TOOL or the default output of
#    bench/git/build-test-tool.sh; CI does not build it).
set -u
cd "$(dirname "$0")/../.."
passed=0
failed=0
skipped=0

log=$(mktemp)
timeout 300 node --test --test-reporter=tap bench/test/ >"$log" 2>&1
rc=$?
grep -E '^(not ok|# (tests|pass|fail|skipped|cancelled|todo)) ' "$log"
count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$log" | tail -1; }
p=$(count pass)
f=$(count fail)
c=$(count cancelled)
s=$(count skipped)
f=$((${f:-0} + ${c:-0}))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
  f=1
  tail -40 "$log"
fi
[ "$f" -gt 0 ] && grep -E -A20 '^not ok' "$log" | head -80
echo "bench tests: ${p:-0} passed, $f failed, ${s:-0} skipped"
passed=$((passed + ${p:-0}))
failed=$((failed + f))
skipped=$((skipped + ${s:-0}))

timeout 300 node bench/run.mjs --quick 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ]; then
  passed=$((passed + 1))
  if grep -q "Git's test-tool comparison skipped" "$log"; then
    skipped=$((skipped + 1))
  else
    passed=$((passed + 1))
  fi
else
  failed=$((failed + 1))
fi
rm -f "$log"
echo "STEP-RESULT: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
