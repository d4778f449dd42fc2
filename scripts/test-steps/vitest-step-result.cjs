// The STEP-RESULT line of a vitest step, from vitest's JSON report.
// Usage: node vitest-step-result.cjs <report.json> [typecheck-failed]
// With a second argument (0 or 1), the step's type check of test/ counts
// as one more test, passed or failed.
'use strict';
const r = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
let passed = r.numPassedTests;
let failed = r.numFailedTests;
if (process.argv[3] !== undefined) {
  if (process.argv[3] === '0') passed++;
  else failed++;
}
console.log(`STEP-RESULT: ${passed} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
