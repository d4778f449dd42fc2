// The STEP-RESULT line of a vitest step, from vitest's JSON report.
// Usage: node vitest-step-result.cjs <report.json>
'use strict';
const r = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
console.log(`STEP-RESULT: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
