#!/usr/bin/env node
// `npm test`: the whole test suite. Runs every step in scripts/test-steps
// in name order (each installs what it needs), prints each step's output,
// and ends with one summary line: "all: N passed, M failed[, K skipped]".
//
// A step is an executable script. Its last line may be
// "STEP-RESULT: N passed, M failed[, K skipped]" to report test counts;
// otherwise the step counts as one test, passed when it exits 0.
// Options: --only=<substring> runs the matching steps; --skip=<substring>.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stepsDir = path.join(root, 'scripts', 'test-steps');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
const skip = process.argv.find((a) => a.startsWith('--skip='))?.slice(7);

const steps = fs
  .readdirSync(stepsDir)
  .filter((f) => /^\d\d-.*\.(sh|mjs)$/.test(f))
  .filter((f) => (only ? f.includes(only) : true) && (skip ? !f.includes(skip) : true))
  .sort();

function run(file) {
  return new Promise((resolve) => {
    const cmd = file.endsWith('.mjs') ? process.execPath : 'bash';
    const child = spawn(cmd, [path.join(stepsDir, file)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onData = (stream) => (d) => {
      stream.write(d);
      tail = (tail + d.toString()).slice(-4096);
    };
    child.stdout.on('data', onData(process.stdout));
    child.stderr.on('data', onData(process.stderr));
    child.on('close', (code, signal) => resolve({ code: code ?? 1, signal, tail }));
  });
}

let passed = 0;
let failed = 0;
let skipped = 0;
const report = [];
for (const file of steps) {
  const started = Date.now();
  console.log(`\n===== ${file} =====`);
  const { code, signal, tail } = await run(file);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const m = /STEP-RESULT: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?/.exec(tail);
  let p = 0;
  let f = 0;
  let s = 0;
  if (m) {
    p = Number(m[1]);
    f = Number(m[2]);
    s = Number(m[3] ?? 0);
  } else if (code === 0) {
    p = 1;
  }
  if (code !== 0 && f === 0) f = 1; // a failing step always counts
  passed += p;
  failed += f;
  skipped += s;
  report.push(`${code === 0 ? 'ok  ' : 'FAIL'} ${file} (${seconds} s): ${p} passed, ${f} failed${s ? `, ${s} skipped` : ''}${signal ? ` (${signal})` : ''}`);
}
console.log('\n===== summary =====');
for (const line of report) console.log(line);
console.log(`all: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed > 0 || steps.length === 0 ? 1 : 0;
