// One line from a vitest JSON report: counts and the files that ran; then,
// for each failed test, its file, name and the first lines of its error, so
// that a failure in CI can be read from the step's summary alone.
// Usage: node vitest-summary.cjs <report.json> <repo root>
//        node vitest-summary.cjs --failed-files <report.json> <repo root>
//          (only the failed test files, one per line, relative to the root)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const failedFilesOnly = args[0] === '--failed-files';
if (failedFilesOnly) args.shift();
const r = JSON.parse(fs.readFileSync(args[0], 'utf8'));
const root = args[1];
if (failedFilesOnly) {
  for (const file of r.testResults) if (file.status === 'failed') console.log(path.relative(root, file.name));
  process.exit(0);
}
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
    const lines = message.split('\n').filter((line) => !line.includes('/node_modules/'));
    for (const line of lines.slice(0, 12)) console.log(`    ${line}`);
  }
}
