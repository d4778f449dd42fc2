// Reads the results of the Windows run (scripts/win/vitest-results.mjs)
// and prints what CI needs: the tests skipped (with their reasons), the
// failures, then one summary line "windows: N passed, M failed, K skipped".
// Exit code: 1 if anything failed or the run itself did not finish (second
// argument: its exit code).
import * as fs from 'node:fs';

const [resultsFile, runExit = '0'] = process.argv.slice(2);
let results;
try {
  results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
} catch {
  console.log(`no results at ${resultsFile}: the run did not finish (exit code ${runExit})`);
  console.log('windows: 0 passed, 1 failed, 0 skipped');
  process.exit(1);
}

const having = (state) => results.tests.filter((t) => t.state === state);
const passed = having('passed').length;
const skips = having('skipped');
const failures = results.tests.filter((t) => t.state !== 'passed' && t.state !== 'skipped');
let failed = failures.length + results.brokenFiles.length + results.unhandledErrors;

if (skips.length) {
  console.log(`\nSkipped (${skips.length}):`);
  for (const { name, note } of skips) console.log(`  - ${name}\n      ${note || '(no reason given)'}`);
}
if (failures.length || results.brokenFiles.length || results.unhandledErrors) {
  console.log(`\nFailed (${failed}):`);
  for (const { name, state } of failures) console.log(`  - ${name}${state === 'failed' ? '' : ` (${state})`}`);
  for (const file of results.brokenFiles) console.log(`  - ${file}: the file failed to load or a hook failed`);
  if (results.unhandledErrors) console.log(`  - ${results.unhandledErrors} unhandled error(s): see the log above`);
}
if (Number(runExit) !== 0 && failed === 0) {
  console.log(`\nvitest exited with ${runExit} although no test failed (timeout or crash?)`);
  failed = 1;
}
console.log(`\nwindows: ${passed} passed, ${failed} failed, ${skips.length} skipped`);
process.exit(failed > 0 ? 1 : 0);
