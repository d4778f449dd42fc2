#!/usr/bin/env bash
# The API, integration and fault tests (vitest, real sockets and processes),
# and the type check of test/.
set -u
cd "$(dirname "$0")/../.."
# test/lifecycle/socket-activation.test.ts also runs under systemd-socket-activate
# (Debian's systemd package); install it where we can, else it skips visibly.
if [ "$(uname -s)" = Linux ] && ! command -v systemd-socket-activate >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing systemd (for systemd-socket-activate)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null 2>&1 ||
    echo "could not install systemd: the systemd-socket-activate test will be skipped"
fi
# The tests' types first (test/tsconfig.json: expectTypeOf assertions and
# every use of the public types), as one more test of the step.
echo "type-checking test/ (npx tsc -p test)"
if npx --no-install tsc -p test; then typecheck_failed=0; else typecheck_failed=1; fi
out=$(mktemp)
npx vitest run --reporter=default --reporter=json --outputFile.json="$out"
rc=$?
[ "$typecheck_failed" = 1 ] && rc=1
node scripts/test-steps/vitest-step-result.cjs "$out" "$typecheck_failed" 2>/dev/null || echo "STEP-RESULT: 0 passed, 1 failed"
rm -f "$out"
exit $rc
