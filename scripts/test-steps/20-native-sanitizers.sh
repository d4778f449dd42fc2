#!/usr/bin/env bash
# The native core and POSIX server/client tests (native/test), built with
# clang and run under AddressSanitizer + UndefinedBehaviorSanitizer, then
# the server tests again with the poll() poller (macOS, BSDs) and under
# ThreadSanitizer (many concurrent clients).
# Any sanitizer report fails the step.
set -u
cd "$(dirname "$0")/../.."
. scripts/test-steps/lib-native.sh

ensure_clang || { echo "STEP-RESULT: 0 passed, 1 failed"; exit 1; }

passed=0
failed=0
tally() {  # tally <name> <log> <rc>: adds the "N passed, M failed" line of a test run
  local line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -1)
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
  p=${p:-0}
  f=${f:-0}
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # a sanitizer report or a crash
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$2"; then
    echo "$1: sanitizer report:"
    grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$2" | head -80
    [ "$f" -eq 0 ] && f=1
  fi
  echo "$1: $p passed, $f failed (exit $3)"
  passed=$((passed + p))
  failed=$((failed + f))
}

run() {  # run <name> <binary> [filter]
  local log rc
  log=$(mktemp)
  timeout 600 "$2" ${3:+"$3"} >"$log" 2>&1
  rc=$?
  grep -vE '^\[ (RUN  | OK  )\]' "$log" | tail -40
  tally "$1" "$log" "$rc"
  rm -f "$log"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1

if build_native asan -DSIPC_SANITIZE=address,undefined; then
  run "asan+ubsan core" native/test/build/asan/sipc_core_test
  run "asan+ubsan conversation" native/test/build/asan/sipc_conversation_test
  run "asan+ubsan connect policy" native/test/build/asan/sipc_connect_policy_test
  run "asan+ubsan client exchange" native/test/build/asan/sipc_exchange_test
  run "asan+ubsan client" native/test/build/asan/sipc_client_test
  run "asan+ubsan server" native/test/build/asan/sipc_server_test
  run "asan+ubsan inherited listener" native/test/build/asan/sipc_inherited_listener_test
else
  echo "asan build failed"
  failed=$((failed + 1))
fi

# The poll() poller (macOS, BSDs) under the same server tests, on Linux.
if build_native asan-poll -DSIPC_SANITIZE=address,undefined -DSIPC_POLL_POLLER=ON; then
  run "asan+ubsan server (poll poller)" native/test/build/asan-poll/sipc_server_test
  run "asan+ubsan client (poll poller)" native/test/build/asan-poll/sipc_client_test
else
  echo "asan-poll build failed"
  failed=$((failed + 1))
fi

if build_native tsan -DSIPC_SANITIZE=thread; then
  run "tsan client" native/test/build/tsan/sipc_client_test
  run "tsan server" native/test/build/tsan/sipc_server_test
else
  echo "tsan build failed"
  failed=$((failed + 1))
fi

echo "STEP-RESULT: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
