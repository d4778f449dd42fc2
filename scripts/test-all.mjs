#!/usr/bin/env node
// `npm test`: the whole test suite. Runs every step in scripts/test-steps
// in name order (each installs what it needs), prints each step's output,
// and ends with one summary line:
// "all: N passed, M failed[, K skipped][, F flaky]".
//
// A step is an executable script. It reports its test counts with a line
// "STEP-RESULT: N passed, M failed[, K skipped][, F flaky]" (the last
// such line counts; "flaky": passed only when run again, already counted
// as passed); without one it counts as one test, passed when it exits 0.
// A step fails when it exits non-zero, reports a failure, or ran nothing
// (a STEP-RESULT with no test passed or failed).
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

/** The counts of a step's last STEP-RESULT line, or null. */
export function stepResult(output) {
  const all = [...output.matchAll(/^STEP-RESULT: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?(?:, (\d+) flaky)?\s*$/gm)];
  const m = all.at(-1);
  if (!m) return null;
  return { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3] ?? 0), flaky: Number(m[4] ?? 0) };
}

/** How a step ends: its counts and verdict from its exit and its STEP-RESULT. */
export function judgeStep(code, output) {
  const r = stepResult(output);
  const counts = r ?? { passed: code === 0 ? 1 : 0, failed: 0, skipped: 0, flaky: 0 };
  const notes = [];
  if (r && r.passed === 0 && r.failed === 0) {
    notes.push('ran nothing');
    counts.failed = 1;
  }
  if (code !== 0 && counts.failed === 0) counts.failed = 1; // a failing step always counts
  return { ...counts, ok: code === 0 && counts.failed === 0, notes };
}

function countsText(c) {
  return `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ''}${c.flaky ? `, ${c.flaky} flaky` : ''}`;
}

async function main() {
  const total = { passed: 0, failed: 0, skipped: 0, flaky: 0 };
  const report = [];
  for (const file of steps) {
    const started = Date.now();
    console.log(`\n===== ${file} =====`);
    const { code, signal, tail } = await run(file);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const step = judgeStep(code, tail);
    for (const k of Object.keys(total)) total[k] += step[k];
    const notes = [...step.notes, ...(signal ? [signal] : [])];
    report.push(`${step.ok ? 'ok  ' : 'FAIL'} ${file} (${seconds} s): ${countsText(step)}${notes.length ? ` (${notes.join(', ')})` : ''}`);
  }
  console.log('\n===== summary =====');
  for (const line of report) console.log(line);
  console.log(`all: ${countsText(total)}`);
  process.exitCode = total.failed > 0 || steps.length === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
