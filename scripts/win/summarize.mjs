// Reads the TAP file of the Windows run and prints what CI needs: the
// tests skipped (with their reasons), then one summary line
// "windows: N passed, M failed, K skipped". Exit code: 1 if anything
// failed or the run itself did not finish (second argument: its exit code).
import * as fs from 'node:fs';

const [tapFile, runExit = '0'] = process.argv.slice(2);
let tap = '';
try {
  tap = fs.readFileSync(tapFile, 'utf8');
} catch {
  console.log(`no TAP output at ${tapFile}: the run did not start (exit code ${runExit})`);
  console.log('windows: 0 passed, 1 failed, 0 skipped');
  process.exit(1);
}

// The last top-level "# pass N" etc. are node --test's totals.
const count = (name) => {
  const all = [...tap.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))];
  return all.length ? Number(all[all.length - 1][1]) : 0;
};
const passed = count('pass');
let failed = count('fail') + count('cancelled');
const skipped = count('skipped') + count('todo');

const skips = [...tap.matchAll(/^\s*ok \d+ - (.*?) # SKIP ?(.*)$/gm)].map((m) => [m[1], m[2]]);
if (skips.length) {
  console.log(`\nSkipped (${skips.length}):`);
  for (const [name, reason] of skips) console.log(`  - ${name}\n      ${reason}`);
}
const failures = [...tap.matchAll(/^\s*not ok \d+ - (.*?)(?: # .*)?$/gm)].map((m) => m[1]);
if (failures.length) {
  console.log(`\nFailed (${failures.length}):`);
  for (const name of failures) console.log(`  - ${name}`);
}
if (Number(runExit) !== 0 && failed === 0) {
  console.log(`\nnode --test exited with ${runExit} although no test failed (timeout or crash?)`);
  failed = 1;
}
console.log(`\nwindows: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
