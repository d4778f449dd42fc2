// One line from a vitest JSON report: counts and the files that ran; then,
// for each failed test, its file, name and the first lines of its error, so
// that a failure in CI can be read from the step's summary alone.
// Usage: node vitest-summary.cjs <report.json> <repo root>
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const r = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const root = process.argv[3];
const files = r.testResults.map((t) => path.relative(root, t.name)).join(', ');
console.log(
  `vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped ` +
    `in ${r.testResults.length} files (${files})`,
);
const stripColours = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
for (const file of r.testResults) {
  const failed = (file.assertionResults || []).filter((a) => a.status === 'failed');
  if (failed.length === 0 && file.status === 'failed' && file.message) {
    console.log(`FAILED file ${path.relative(root, file.name)}: ${stripColours(file.message).split('\n')[0]}`);
  }
  for (const a of failed) {
    console.log(`FAILED ${path.relative(root, file.name)} > ${a.fullName}`);
    const message = stripColours((a.failureMessages || []).join('\n'));
    for (const line of message.split('\n').slice(0, 12)) console.log(`    ${line}`);
  }
}
