#!/usr/bin/env bash
# libFuzzer (clang, with ASan+UBSan) over the pkt-line reader, the
# server's request path, and the real server over a socket, for a bounded
# time (FUZZ_SECONDS in all, default 60). Any crash, sanitizer report or
# reference mismatch fails the step; the input that caused it is kept in
# native/test/build/fuzz-artifacts/ (reproduce: <target binary> <file>).
# Seeds: native/test/corpus/<target>/ (read only; new inputs go to
# native/test/build/fuzz-corpus/).
set -u
cd "$(dirname "$0")/../.."
. scripts/test-steps/lib-native.sh

total=${FUZZ_SECONDS:-60}
ensure_clang || { echo "STEP-RESULT: 0 passed, 1 failed"; exit 1; }
if ! build_native fuzz -DSIPC_FUZZ=ON; then
  echo "fuzz build failed"
  echo "STEP-RESULT: 0 passed, 1 failed"
  exit 1
fi

# target:share of the time (percent):max_len
targets="fuzz_pkt_reader:35:70000 fuzz_request_reader:35:70000 fuzz_server_conn:30:8192"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
artifacts=native/test/build/fuzz-artifacts
mkdir -p "$artifacts"
passed=0
failed=0
for spec in $targets; do
  IFS=: read -r name share max_len <<<"$spec"
  seconds=$((total * share / 100))
  [ "$seconds" -lt 1 ] && seconds=1
  work=native/test/build/fuzz-corpus/$name
  mkdir -p "$work"
  log=$(mktemp)
  # -timeout: one input taking more than 20 s is a hang, which fails too.
  timeout $((seconds + 120)) "native/test/build/fuzz/$name" "$work" "native/test/corpus/$name" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" >"$log" 2>&1
  rc=$?
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov:' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "$name: ok, ${execs:-?} inputs in ${seconds} s, coverage ${cov:-?} edges"
  else
    failed=$((failed + 1))
    echo "$name: FAILED (exit $rc) after ${execs:-?} inputs"
    grep -E -B2 -A40 'fuzz check failed|ERROR: |runtime error:|deadly signal|timeout after' "$log" | head -80
    ls -1 "$artifacts" | sed 's/^/  artifact: /'
  fi
  rm -f "$log"
done
echo "STEP-RESULT: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
