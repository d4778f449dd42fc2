// One line from a vitest JSON report: counts and the files that ran.
// Usage: node vitest-summary.cjs <report.json> <repo root>
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const r = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const files = r.testResults.map((t) => path.relative(process.argv[3], t.name)).join(', ');
console.log(
  `vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped ` +
    `in ${r.testResults.length} files (${files})`,
);
