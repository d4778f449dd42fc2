#!/usr/bin/env node
// Counts what a small request costs, per request, on each side: system
// calls by name, futex calls, context switches, CPU time.
//
//   node bench/count.mjs [--pairs client/server,...] [--requests N]
//                        [--concurrency T] [--bytecount B] [--no-strace]
//
// Implementations (client and server):
//   git   Git's test-tool simple-ipc (multiple / run-daemon), found as
//         bench/run.mjs finds it (GIT_TEST_TOOL or the build script's
//         default output, bench/git/build-test-tool.sh)
//   ours  our CLI: node dist/cli.js multiple / run-daemon
//   c     bench/c: ref_client -c T / ref_server -t T
// Default pairs: every pairing of git and ours (and c/c). The client sends
// N requests of B bytes from T threads (Git's `multiple`; ours: T
// concurrent senders), each on a new connection; the daemon runs with
// --threads=T.
//
// Two passes over one daemon, after a warm-up of N/10 requests:
//  1. untraced: context switches of every daemon thread
//     (/proc/<pid>/task/*/status, voluntary + involuntary, before/after),
//     daemon CPU time (/proc/<pid>/stat), and the client's under
//     `perf stat -e context-switches,task-clock` (all its threads);
//  2. under `strace -f -c`: system calls by name, daemon (attached to all
//     its threads) and client. strace slows both sides, which can change
//     how often threads sleep and wake (futex, epoll_wait): counts of
//     pass 2 are for comparing implementations under the same tracer.
// Per-request figures = delta / N. Output: markdown on stdout (progress on
// stderr); --json adds the raw counts.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchEnv, compileC, loadNote } from './lib/common.mjs';
import { OUR_CLI, findGitTestTool } from './lib/git-ref.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUILD = path.join(HERE, 'build');
const { values: opts } = parseArgs({
  options: {
    pairs: { type: 'string' },
    requests: { type: 'string', default: '16000' },
    concurrency: { type: 'string', default: '8' },
    bytecount: { type: 'string', default: '64' },
    'no-strace': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 28).join('\n'));
  process.exit(0);
}
const T = Number(opts.concurrency);
const BATCH = Math.ceil(Number(opts.requests) / T);
const N = BATCH * T;
const BYTES = Number(opts.bytecount);
const log = (...a) => console.error(...a);
const { env: ENV, note: envNote } = benchEnv();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const git = findGitTestTool();
const children = new Set();
let tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-count-'));
function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = null;
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// ------------------------------------------------------------- commands
function daemonCommand(impl, sockPath) {
  switch (impl) {
    case 'git': return [git.tool, ['simple-ipc', 'run-daemon', `--name=${sockPath}`, `--threads=${T}`]];
    case 'ours': return [process.execPath, [OUR_CLI, 'run-daemon', `--name=${sockPath}`, `--threads=${T}`]];
    case 'c': return [path.join(BUILD, 'ref_server'), ['-p', sockPath, '-t', String(T)]];
  }
  throw new Error(`unknown server ${impl}`);
}

function clientCommand(impl, sockPath, batch) {
  const multiple = ['multiple', `--name=${sockPath}`, `--threads=${T}`, `--bytecount=${BYTES}`, `--batchsize=${batch}`];
  switch (impl) {
    case 'git': return [git.tool, ['simple-ipc', ...multiple]];
    case 'ours': return [process.execPath, [OUR_CLI, ...multiple]];
    case 'c': return [path.join(BUILD, 'ref_client'), ['-p', sockPath, '-n', String(batch * T), '-c', String(T), '-s', `${BYTES}:${BYTES}`]];
  }
  throw new Error(`unknown client ${impl}`);
}

// ---------------------------------------------------------- processes
function run(file, args) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(file, args, { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code, sig) => {
      if (code === 0) resolve(err);
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} exited (${code ?? sig}): ${err.trim().slice(-400)}`));
    });
  });
}

async function startDaemon(impl, sockPath) {
  const [file, args] = daemonCommand(impl, sockPath);
  const child = track(spawn(file, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stdout.resume();
  child.stderr.resume();
  for (let i = 0; i < 750 && !fs.existsSync(sockPath); i++) {
    if (child.exitCode !== null) throw new Error(`${impl} daemon exited (${child.exitCode})`);
    await sleep(20);
  }
  if (!fs.existsSync(sockPath)) throw new Error(`${impl} daemon: no ${sockPath} after 15 s`);
  await sleep(200);
  return child;
}

async function stopDaemon(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 4000);
  await exited;
  clearTimeout(t);
}

// ------------------------------------------------------------- /proc
function threadSwitches(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const v = Number(s.match(/^voluntary_ctxt_switches:\s+(\d+)/m)[1]);
      const nv = Number(s.match(/^nonvoluntary_ctxt_switches:\s+(\d+)/m)[1]);
      const name = s.match(/^Name:\s+(.*)$/m)[1];
      out.set(tid, { v, nv, name });
    } catch {} // the thread ended meanwhile
  }
  return out;
}

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS; // utime + stime
}

// Threads present before and after; a thread started during the pass
// counts from zero, one that ended during it is lost (none of the daemons
// measured here ends threads while serving).
function switchDelta(before, after) {
  let v = 0;
  let nv = 0;
  const byName = {}; // thread name (comm) -> switches, summed over threads of that name
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { v: 0, nv: 0 };
    v += a.v - b.v;
    nv += a.nv - b.nv;
    byName[a.name] = (byName[a.name] ?? 0) + (a.v - b.v) + (a.nv - b.nv);
  }
  return { v, nv, threads: after.size, byName };
}

// ------------------------------------------------------------ tracers
function perfStat(file, args) {
  const out = path.join(tmpDir, `perf-${Date.now()}.csv`);
  return run('perf', ['stat', '-x', ',', '-o', out, '-e', 'context-switches,cpu-migrations,task-clock', '--', file, ...args]).then(() => {
    const r = {};
    for (const line of fs.readFileSync(out, 'utf8').split('\n')) {
      const f = line.split(',');
      if (f.length > 3 && f[0] !== '' && !line.startsWith('#')) r[f[2]] = Number(f[0]);
    }
    return { switches: r['context-switches'], migrations: r['cpu-migrations'], cpuMs: r['task-clock'] };
  });
}

// strace -c summary: "% time seconds usecs/call calls [errors] syscall".
function parseStraceSummary(text) {
  const calls = {};
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d/.test(f[0]) || f.at(-1) === 'total') continue;
    calls[f.at(-1)] = Number(f[3]);
  }
  return calls;
}

async function straceAttach(pid) {
  const out = path.join(tmpDir, `strace-d-${pid}.txt`);
  const child = track(spawn('strace', ['-f', '-c', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  for (let i = 0; i < 500 && !err.includes('attached'); i++) await sleep(10);
  if (!err.includes('attached')) throw new Error(`strace -p ${pid} did not attach: ${err}`);
  await sleep(300);
  return {
    stop: async () => {
      const exited = new Promise((r) => child.once('close', r));
      child.kill('SIGINT');
      await exited;
      return parseStraceSummary(fs.readFileSync(out, 'utf8'));
    },
  };
}

async function straceRun(file, args) {
  const out = path.join(tmpDir, `strace-c-${Date.now()}.txt`);
  await run('strace', ['-f', '-c', '-o', out, '--', file, ...args]);
  return parseStraceSummary(fs.readFileSync(out, 'utf8'));
}

// ------------------------------------------------------------ one pair
async function countPair(clientImpl, serverImpl) {
  const sockPath = path.join(tmpDir, `${clientImpl}-${serverImpl}.sock`);
  const daemon = await startDaemon(serverImpl, sockPath);
  const pid = daemon.pid;
  try {
    const [wf, wa] = clientCommand(clientImpl, sockPath, Math.max(1, Math.ceil(BATCH / 10)));
    await run(wf, wa);

    const [file, args] = clientCommand(clientImpl, sockPath, BATCH);
    const sw0 = threadSwitches(pid);
    const cpu0 = cpuMs(pid);
    const t0 = process.hrtime.bigint();
    const client = await perfStat(file, args);
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const server = { ...switchDelta(sw0, threadSwitches(pid)), cpuMs: cpuMs(pid) - cpu0 };

    let syscalls = null;
    if (!opts['no-strace']) {
      const tracer = await straceAttach(pid);
      const clientCalls = await straceRun(file, args);
      syscalls = { server: await tracer.stop(), client: clientCalls };
    }
    return { client: clientImpl, server: serverImpl, requests: N, wallS, serverCounts: server, clientCounts: client, syscalls };
  } finally {
    await stopDaemon(daemon);
  }
}

// ------------------------------------------------------------- output
const per = (x) => (x == null ? '-' : (x / N).toFixed(2));
const sum = (o) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);

function report(results) {
  const lines = [];
  lines.push(`Per request: ${N} requests of ${BYTES} bytes, ${T} client threads/senders, daemon --threads=${T}; ` +
    `Node ${process.version}, ${os.cpus()[0]?.model}, ${loadNote()}; ${envNote}.`);
  lines.push('');
  lines.push('| client/server | wall s | server ctx sw (vol+invol) | server CPU ms | server syscalls | server futex | client ctx sw | client CPU ms | client syscalls | client futex |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const s = r.serverCounts;
    const c = r.clientCounts;
    lines.push(`| ${r.client}/${r.server} | ${r.wallS.toFixed(2)} | ${per(s.v + s.nv)} (${per(s.v)}+${per(s.nv)}) | ${(s.cpuMs / N).toFixed(3)} | ` +
      `${r.syscalls ? per(sum(r.syscalls.server)) : '-'} | ${r.syscalls ? per(r.syscalls.server.futex ?? 0) : '-'} | ` +
      `${per(c.switches)} | ${(c.cpuMs / N).toFixed(3)} | ${r.syscalls ? per(sum(r.syscalls.client)) : '-'} | ${r.syscalls ? per(r.syscalls.client.futex ?? 0) : '-'} |`);
  }
  lines.push('');
  lines.push('Server context switches per request by thread name (threads of one name summed): ' +
    results.map((r) => `${r.client}/${r.server}: ` + Object.entries(r.serverCounts.byName).filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${per(n)}`).join(', ')).join('; ') + '.');
  lines.push('');
  lines.push('Context switches and CPU: untraced pass (server: every thread of the daemon, from /proc; client: `perf stat`, the whole ' +
    'process including its start). System calls: a second pass under `strace -f -c` (same daemon, same client command).');
  for (const side of ['server', 'client']) {
    const withCalls = results.filter((r) => r.syscalls);
    if (!withCalls.length) continue;
    const names = new Set();
    for (const r of withCalls) {
      for (const [k, v] of Object.entries(r.syscalls[side])) if (v / N >= 0.05) names.add(k);
    }
    const sorted = [...names].sort((a, b) => sum(withCalls.map((r) => r.syscalls[side][b] ?? 0)) - sum(withCalls.map((r) => r.syscalls[side][a] ?? 0)));
    lines.push('');
    lines.push(`${side} system calls per request (those >= 0.05 per request somewhere):`);
    lines.push('');
    lines.push(`| syscall | ${withCalls.map((r) => `${r.client}/${r.server}`).join(' | ')} |`);
    lines.push(`| --- | ${withCalls.map(() => '---:').join(' | ')} |`);
    for (const k of sorted) lines.push(`| ${k} | ${withCalls.map((r) => per(r.syscalls[side][k] ?? 0)).join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main() {
  for (const w of compileC(BUILD)) log(w);
  const oursBuilt = fs.existsSync(OUR_CLI);
  let pairs = opts.pairs
    ? opts.pairs.split(',').map((p) => p.split('/'))
    : [['git', 'git'], ['git', 'ours'], ['ours', 'git'], ['ours', 'ours'], ['c', 'c']];
  const skipped = [];
  pairs = pairs.filter(([c, s]) => {
    if ((c === 'git' || s === 'git') && !git.tool) return skipped.push(`${c}/${s}: ${git.reason}`), false;
    if ((c === 'ours' || s === 'ours') && !oursBuilt) return skipped.push(`${c}/${s}: ${OUR_CLI} not built`), false;
    return true;
  });
  for (const tool of ['perf', ...(opts['no-strace'] ? [] : ['strace'])]) {
    if (spawnSync(tool, ['--version']).status !== 0) throw new Error(`${tool} is needed (apt-get install ${tool === 'perf' ? 'linux-perf' : tool})`);
  }
  log(`${envNote}; ${loadNote()}`);
  const results = [];
  for (const [c, s] of pairs) {
    log(`counting ${c}/${s}: ${N} requests ...`);
    results.push(await countPair(c, s));
  }
  console.log(report(results));
  for (const s of skipped) console.log(`- skipped ${s}`);
  if (opts.json) console.log('\n```json\n' + JSON.stringify(results, null, 1) + '\n```');
}

main().catch((err) => {
  log(`count: ${err.stack || err.message}`);
  process.exitCode = 1;
});
