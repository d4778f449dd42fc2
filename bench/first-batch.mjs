#!/usr/bin/env node
// A fresh daemon's first batches: is the first batch after start slower
// than the later ones (V8 not warmed up yet), and by how much?
//
//   node bench/first-batch.mjs [--daemons git,ours,before] [--before DIR]
//                              [--rounds R] [--batches B] [--batchsize N]
//                              [--threads T] [--bytecount C]
//
// Each round starts every daemon afresh (`run-daemon --threads=8`, in turn,
// the order rotating from round to round) and sends it B batches of Git's
// client, `test-tool simple-ipc multiple --threads=T --batchsize=N`
// (default 8 x 4000 requests of 64 bytes, t0052's figure), one after
// the other. Per batch: the client's wall time, and the daemon's CPU time
// during it (all threads, and its main thread: for our daemon the JS
// thread) from /proc. Printed: the median over rounds for each batch,
// and Git's daemon's wall time over ours (above 1: ours is faster).
// `before` is another build of ours (a copy of the package with its dist/
// and build/Release/, as bench/count.mjs --before takes). Linux only.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { benchEnv, loadNote, median, stopProcess } from './lib/common.mjs';
import { findGitTestTool, startDaemon as startGitRefDaemon } from './lib/git-ref.mjs';

const { values: opts } = parseArgs({
  options: {
    daemons: { type: 'string', default: 'git,ours' },
    before: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    batches: { type: 'string', default: '3' },
    batchsize: { type: 'string', default: '4000' },
    threads: { type: 'string', default: '8' },
    bytecount: { type: 'string', default: '64' },
  },
});
const DAEMONS = opts.daemons.split(',');
const ROUNDS = Number(opts.rounds);
const BATCHES = Number(opts.batches);
const { env: ENV, note: envNote } = benchEnv();
const git = findGitTestTool();
if (git.tool === null) throw new Error(git.reason);
if (DAEMONS.includes('before') && !opts.before) throw new Error('--daemons before needs --before DIR');

const children = new Set();
const track = (child) => {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-first-'));
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim());
/** CPU ms (user + system) of a whole process, or of one of its threads. */
function cpuMs(pid, tid = null) {
  const stat = fs.readFileSync(tid === null ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

async function startDaemon(impl, sockPath) {
  if (impl !== 'before') return startGitRefDaemon(impl, { tool: git.tool, sockPath, env: ENV, track });
  // git-ref's startDaemon runs dist/cli.js: point it at the other build.
  const cli = path.resolve(opts.before, 'dist/cli.js');
  const child = track(spawn(process.execPath, [cli, 'run-daemon', `--name=${sockPath}`, '--threads=8'], { env: ENV, stdio: 'ignore' }));
  for (let i = 0; i < 1500 && !fs.existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 20));
  const probe = spawnSync(git.tool, ['simple-ipc', 'is-active', `--name=${sockPath}`]);
  if (probe.status !== 0) throw new Error(`before daemon not listening on ${sockPath}`);
  return { child, impl, sockPath };
}

function runBatch(sockPath) {
  const args = ['simple-ipc', 'multiple', `--name=${sockPath}`, `--threads=${opts.threads}`, `--bytecount=${opts.bytecount}`, `--batchsize=${opts.batchsize}`];
  const expected = `(good ${Number(opts.threads) * Number(opts.batchsize)})`;
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = track(spawn(git.tool, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
    let tail = '';
    child.stdout.on('data', (d) => (tail = (tail + d).slice(-200)));
    child.stderr.resume();
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0 || !tail.includes(expected) || !tail.includes('(errors 0)')) reject(new Error(`client failed (${code}): ${tail}`));
      else resolve(seconds);
    });
  });
}

// results[impl][batch] = [{ wall, cpu, mainCpu }, ...] over rounds
const results = Object.fromEntries(DAEMONS.map((d) => [d, Array.from({ length: BATCHES }, () => [])]));
console.error(`${envNote}; ${loadNote()}`);
for (let round = 0; round < ROUNDS; round++) {
  const order = DAEMONS.map((_, i) => DAEMONS[(i + round) % DAEMONS.length]);
  for (const impl of order) {
    const sockPath = path.join(tmp, `${impl}-${round}.sock`);
    const daemon = await startDaemon(impl, sockPath);
    const pid = daemon.child.pid;
    for (let batch = 0; batch < BATCHES; batch++) {
      const cpu0 = cpuMs(pid);
      const main0 = cpuMs(pid, pid);
      const wall = await runBatch(sockPath);
      results[impl][batch].push({ wall, cpu: cpuMs(pid) - cpu0, mainCpu: cpuMs(pid, pid) - main0 });
    }
    await stopProcess(daemon.child, sockPath);
    console.error(`round ${round + 1}/${ROUNDS} ${impl}: ${results[impl].map((b) => b.at(-1).wall.toFixed(3)).join(' ')} s`);
  }
}

const requests = Number(opts.threads) * Number(opts.batchsize);
const med = (impl, batch, key) => median(results[impl][batch].map((r) => r[key]));
console.log(`${ROUNDS} fresh daemons each, ${BATCHES} batches of Git's multiple (${opts.threads} x ${opts.batchsize}, ${opts.bytecount} B); medians over rounds; ${loadNote()}\n`);
console.log('| daemon | batch | client wall s | daemon CPU ms/request | of which main thread |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const impl of DAEMONS) {
  for (let batch = 0; batch < BATCHES; batch++) {
    console.log(`| ${impl} | ${batch + 1} | ${med(impl, batch, 'wall').toFixed(3)} | ${(med(impl, batch, 'cpu') / requests).toFixed(4)} | ${(med(impl, batch, 'mainCpu') / requests).toFixed(4)} |`);
  }
}
if (DAEMONS.includes('git')) {
  console.log('\nGit\'s daemon wall / ours (median of the per-round ratios; above 1: ours faster):\n');
  console.log(`| daemon | ${Array.from({ length: BATCHES }, (_, b) => `batch ${b + 1}`).join(' | ')} |`);
  console.log(`| --- |${' ---: |'.repeat(BATCHES)}`);
  for (const impl of DAEMONS.filter((d) => d !== 'git')) {
    const cells = Array.from({ length: BATCHES }, (_, b) => median(results.git[b].map((g, r) => g.wall / results[impl][b][r].wall)).toFixed(2));
    console.log(`| ${impl} | ${cells.join(' | ')} |`);
  }
}
