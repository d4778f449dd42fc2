#!/usr/bin/env node
// Counts what a small request costs, per request, on each side: system
// calls (in all and by name), futex calls, context switches, CPU time.
//
//   node bench/count.mjs [--pairs client/server,...] [--requests N]
//                        [--concurrency T] [--daemon-threads D] [--bytecount B]
//                        [--tracer perf|strace|none] [--json]
//                        [--before DIR] [--no-warmup]
//
// Implementations (client and server):
//   git   Git's test-tool simple-ipc (multiple / run-daemon), found as
//         bench/run.mjs finds it (GIT_TEST_TOOL or the build script's
//         default output, bench/git/build-test-tool.sh)
//   ours  our CLI: node dist/cli.js multiple / run-daemon
//   c     bench/c: ref_client -c T / ref_server -t D
//   before  another build of ours, given with --before DIR (a copy of
//         the package with its dist/ and build/Release/), to count a
//         change before and after in the same run: --pairs git/before,git/ours
// Default pairs: git/git, git/ours, ours/git, ours/ours, c/c. The client
// sends N requests of B bytes from T threads (Git's `multiple`; ours: T
// concurrent senders), each on a new connection; the daemon runs with
// --threads=D (8, as in Git's t0052).
//
// Two passes over one daemon, after a warm-up of N/10 requests (none with
// --no-warmup: pass 1 then counts a fresh daemon's first batch):
//  1. counters, nothing stopped: `perf stat` on the daemon (-p, all its
//     threads) while the client runs, and on the client (its whole
//     process): raw_syscalls:sys_enter, syscalls:sys_enter_futex,
//     context-switches, cpu-migrations, task-clock; plus the daemon's
//     main-thread context switches from /proc/<pid>/task/<pid>/status;
//  2. system calls by name: `perf trace -s` (or `strace -f -c`, which
//     stops every thread at every call and so changes how often threads
//     sleep and wake) on the daemon and the client.
// Per-request figures = count / N. Markdown on stdout, progress on stderr;
// --json adds the raw counts. Needs perf (linux-perf) and, for
// --tracer strace, strace.
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
    'daemon-threads': { type: 'string', default: '8' },
    bytecount: { type: 'string', default: '64' },
    tracer: { type: 'string', default: 'perf' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    before: { type: 'string' },
    'no-warmup': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 36).join('\n'));
  process.exit(0);
}
const T = Number(opts.concurrency);
const DAEMON_THREADS = Number(opts['daemon-threads']);
const BATCH = Math.ceil(Number(opts.requests) / T);
const N = BATCH * T;
const BYTES = Number(opts.bytecount);
const log = (...a) => console.error(...a);
const { env: ENV, note: envNote } = benchEnv();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const git = findGitTestTool();
const BEFORE_CLI = opts.before ? path.resolve(opts.before, 'dist/cli.js') : null;
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
    case 'git': return [git.tool, ['simple-ipc', 'run-daemon', `--name=${sockPath}`, `--threads=${DAEMON_THREADS}`]];
    case 'ours': return [process.execPath, [OUR_CLI, 'run-daemon', `--name=${sockPath}`, `--threads=${DAEMON_THREADS}`]];
    case 'before': return [process.execPath, [BEFORE_CLI, 'run-daemon', `--name=${sockPath}`, `--threads=${DAEMON_THREADS}`]];
    case 'c': return [path.join(BUILD, 'ref_server'), ['-p', sockPath, '-t', String(DAEMON_THREADS)]];
  }
  throw new Error(`unknown server ${impl}`);
}

function clientCommand(impl, sockPath, batch) {
  const multiple = ['multiple', `--name=${sockPath}`, `--threads=${T}`, `--bytecount=${BYTES}`, `--batchsize=${batch}`];
  switch (impl) {
    case 'git': return [git.tool, ['simple-ipc', ...multiple]];
    case 'ours': return [process.execPath, [OUR_CLI, ...multiple]];
    case 'before': return [process.execPath, [BEFORE_CLI, ...multiple]];
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
// Context switches of each thread (voluntary + involuntary), by tid.
function threadSwitches(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const v = Number(st.match(/^voluntary_ctxt_switches:\s+(\d+)/m)[1]);
      const nv = Number(st.match(/^nonvoluntary_ctxt_switches:\s+(\d+)/m)[1]);
      out.set(tid, v + nv);
    } catch {} // the thread ended meanwhile
  }
  return out;
}

// CPU time (user + system, ms) of the main thread: for a node daemon the
// JS thread, where our server's per-request work is serialised.
const TICK_MS = 1000 / (Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100);
function mainThreadCpuMs(pid) {
  const st = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime
}

// Switches during the pass: all threads, and the main thread alone (the
// JS thread of a node daemon). A thread started during the pass counts
// from zero; one that ended during it is lost (the daemons measured here
// keep their threads while serving).
function switchDelta(pid, before, after) {
  let all = 0;
  for (const [tid, n] of after) all += n - (before.get(tid) ?? 0);
  const main = (after.get(String(pid)) ?? 0) - (before.get(String(pid)) ?? 0);
  return { all, main };
}

// ------------------------------------------------------------ tracers
// Counters: total system calls and futex calls from the syscall
// tracepoints (counted in the kernel, nothing stops the threads), context
// switches, CPU time. Without tracepoint access, the last three only.
const COUNTERS_FULL = 'raw_syscalls:sys_enter,syscalls:sys_enter_futex,context-switches,cpu-migrations,task-clock';
const COUNTERS_BASIC = 'context-switches,cpu-migrations,task-clock';
let counters = COUNTERS_FULL;

function parsePerfStat(file) {
  const r = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(',');
    if (f.length > 3 && !line.startsWith('#')) r[f[2]] = f[0] === '<not counted>' || f[0] === '<not supported>' ? null : Number(f[0]);
  }
  return {
    syscalls: r['raw_syscalls:sys_enter'] ?? null,
    futex: r['syscalls:sys_enter_futex'] ?? null,
    switches: r['context-switches'] ?? null,
    migrations: r['cpu-migrations'] ?? null,
    cpuMs: r['task-clock'] ?? null,
  };
}

let outCounter = 0;
const outFile = (what) => path.join(tmpDir, `${what}-${outCounter++}.txt`);

async function perfStatRun(file, args) {
  const out = outFile('perf-stat');
  await run('perf', ['stat', '-x', ',', '-o', out, '-e', counters, '--', file, ...args]);
  return parsePerfStat(out);
}

// A tracer attached to every thread of a running process until stop().
async function attach(argv, out) {
  const child = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  // strace says when it is attached; perf says nothing: give it time.
  if (argv[0] === 'strace') {
    for (let i = 0; i < 500 && !err.includes('attached'); i++) await sleep(10);
    if (!err.includes('attached')) throw new Error(`${argv.join(' ')} did not attach: ${err}`);
  }
  await sleep(500);
  if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited (${child.exitCode}): ${err.trim()}`);
  return async () => {
    const exited = new Promise((r) => child.once('close', r));
    child.kill('SIGINT');
    await exited;
    return { text: fs.readFileSync(out, 'utf8'), stderr: err };
  };
}

// System calls by name: `perf trace -s` (one table per thread: summed) or
// `strace -f -c` ("% time seconds usecs/call calls [errors] syscall").
// Returns { calls: {name: n}, errors: {name: n} } (errors: calls that
// failed, e.g. EAGAIN from an accept4 another thread won).
function parseCallsByName(text, tracer) {
  const calls = {};
  const errors = {};
  const add = (name, n, e) => {
    calls[name] = (calls[name] ?? 0) + n;
    errors[name] = (errors[name] ?? 0) + e;
  };
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (tracer === 'perf') {
      if (f.length >= 8 && /^[a-z_0-9]+$/.test(f[0]) && /^\d+$/.test(f[1]) && /^\d+$/.test(f[2])) add(f[0], Number(f[1]), Number(f[2]));
    } else if (f.length >= 5 && /^\d/.test(f[0]) && f.at(-1) !== 'total') {
      add(f.at(-1), Number(f[3]), f.length >= 6 ? Number(f[4]) : 0);
    }
  }
  return { calls, errors };
}

function tracerArgv(tracer, out, target) {
  if (tracer === 'perf') return ['perf', 'trace', '-s', '-o', out, ...target];
  return ['strace', '-f', '-c', '-o', out, ...target];
}

async function callsByName(tracer, pid, file, args) {
  const serverOut = outFile(`${tracer}-server`);
  const stop = await attach(tracerArgv(tracer, serverOut, ['-p', String(pid)]), serverOut);
  const clientOut = outFile(`${tracer}-client`);
  const [tracerFile, ...tracerArgs] = tracerArgv(tracer, clientOut, ['--', file, ...args]);
  let server;
  try {
    await run(tracerFile, tracerArgs);
  } finally {
    server = await stop();
  }
  const lost = /LOST (\d+) events/.exec(server.text + server.stderr)?.[1];
  const serverCalls = parseCallsByName(server.text, tracer);
  const clientCalls = parseCallsByName(fs.readFileSync(clientOut, 'utf8'), tracer);
  return {
    server: serverCalls.calls,
    client: clientCalls.calls,
    errors: { server: serverCalls.errors, client: clientCalls.errors },
    lost: lost ? Number(lost) : 0,
  };
}

// ------------------------------------------------------------ one pair
async function countPair(clientImpl, serverImpl, withNames) {
  const sockPath = path.join(tmpDir, `${clientImpl}-${serverImpl}.sock`);
  const daemon = await startDaemon(serverImpl, sockPath);
  const pid = daemon.pid;
  try {
    if (!opts['no-warmup']) {
      const [wf, wa] = clientCommand(clientImpl, sockPath, Math.max(1, Math.ceil(BATCH / 10)));
      await run(wf, wa);
    }

    // Pass 1: counters.
    const [file, args] = clientCommand(clientImpl, sockPath, BATCH);
    const statOut = outFile('perf-stat-server');
    const stopStat = await attach(['perf', 'stat', '-x', ',', '-o', statOut, '-e', counters, '-p', String(pid)], statOut);
    const sw0 = threadSwitches(pid);
    const mainCpu0 = mainThreadCpuMs(pid);
    const t0 = process.hrtime.bigint();
    let client;
    try {
      client = await perfStatRun(file, args);
    } finally {
      await stopStat();
    }
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const threads = { ...switchDelta(pid, sw0, threadSwitches(pid)), mainCpuMs: mainThreadCpuMs(pid) - mainCpu0 };
    const server = { ...parsePerfStat(statOut), threads };

    // Pass 2: system calls by name, under a tracer.
    const byName = withNames && opts.tracer !== 'none' ? await callsByName(opts.tracer, pid, file, args) : null;
    return { client: clientImpl, server: serverImpl, requests: N, wallS, serverCounts: server, clientCounts: client, byName };
  } finally {
    await stopDaemon(daemon);
  }
}

// ------------------------------------------------------------- output
const per = (x) => (x == null ? '-' : (x / N).toFixed(2));

function medianOf(values) {
  const v = values.filter((x) => x != null).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// One pair's rounds -> medians (and each round's figures, for the range).
function summarise(rounds) {
  const last = rounds.at(-1);
  const med = (get) => medianOf(rounds.map(get));
  const side = (get) => ({
    syscalls: med((r) => get(r).syscalls),
    futex: med((r) => get(r).futex),
    switches: med((r) => get(r).switches),
    cpuMs: med((r) => get(r).cpuMs),
  });
  return {
    ...last,
    wallS: med((r) => r.wallS),
    serverCounts: { ...side((r) => r.serverCounts), threads: { main: med((r) => r.serverCounts.threads.main), mainCpuMs: med((r) => r.serverCounts.threads.mainCpuMs) } },
    clientCounts: side((r) => r.clientCounts),
    rounds,
  };
}

// "median (min-max)" per request over the rounds.
function spread(result, get) {
  const v = result.rounds.map(get).filter((x) => x != null);
  const m = medianOf(v);
  if (m == null) return '-';
  if (v.length < 2) return per(m);
  return `${per(m)} (${per(Math.min(...v))}-${per(Math.max(...v))})`;
}

function report(results, rounds) {
  const lines = [];
  lines.push(`Per request: ${N} requests of ${BYTES} bytes, ${T} client threads/senders, daemon --threads=${DAEMON_THREADS}; ` +
    `Node ${process.version}, ${os.cpus()[0]?.model}, ${loadNote()}; ${envNote}.`);
  lines.push('');
  lines.push('| client/server | wall s | server syscalls | server futex | server ctx sw | of which main thread | server CPU ms | of which main thread | client syscalls | client futex | client ctx sw | client CPU ms |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const s = r.serverCounts;
    const c = r.clientCounts;
    lines.push(`| ${r.client}/${r.server} | ${r.wallS.toFixed(2)} | ${per(s.syscalls)} | ${spread(r, (x) => x.serverCounts.futex)} | ` +
      `${spread(r, (x) => x.serverCounts.switches)} | ${per(s.threads.main)} | ` +
      `${s.cpuMs == null ? '-' : (s.cpuMs / N).toFixed(3)} | ${(s.threads.mainCpuMs / N).toFixed(3)} | ${per(c.syscalls)} | ${per(c.futex)} | ${per(c.switches)} | ${c.cpuMs == null ? '-' : (c.cpuMs / N).toFixed(3)} |`);
  }
  lines.push('');
  lines.push(`Medians over ${rounds} round(s) (pairs taking turns, a fresh daemon each), with the range for futex calls and ` +
    'context switches, which depend most on the load. ' +
    'Counters (`perf stat`: the syscall tracepoints, context-switches, task-clock), untraced: the server over every ' +
    'thread of the daemon while the client ran, the client over its whole process (its start included). "of which main ' +
    'thread": context switches and CPU time of the daemon\'s first thread (the JS thread for node, where our server\'s ' +
    'per-request work is serialised), from /proc/<pid>/task/<pid>/status and stat (CPU in clock ticks: 10 ms steps).');
  const withCalls = results.filter((r) => r.byName);
  for (const side of ['server', 'client']) {
    if (!withCalls.length) continue;
    const names = new Set();
    for (const r of withCalls) for (const [k, v] of Object.entries(r.byName[side])) if (v / N >= 0.05) names.add(k);
    const total = (k) => withCalls.reduce((a, r) => a + (r.byName[side][k] ?? 0), 0);
    lines.push('');
    lines.push(`${side} system calls per request by name (second pass, under \`${opts.tracer === 'perf' ? 'perf trace -s' : 'strace -f -c'}\`; ` +
      'those >= 0.05 per request somewhere; "failed": returned an error, e.g. EAGAIN):');
    lines.push('');
    lines.push(`| syscall | ${withCalls.map((r) => `${r.client}/${r.server}`).join(' | ')} |`);
    lines.push(`| --- | ${withCalls.map(() => '---:').join(' | ')} |`);
    const cell = (r, k) => {
      const failed = r.byName.errors[side][k] ?? 0;
      return per(r.byName[side][k] ?? 0) + (failed / N >= 0.01 ? ` (${per(failed)} failed)` : '');
    };
    for (const k of [...names].sort((a, b) => total(b) - total(a))) lines.push(`| ${k} | ${withCalls.map((r) => cell(r, k)).join(' | ')} |`);
  }
  const lost = withCalls.filter((r) => r.byName.lost);
  for (const r of lost) lines.push(`- ${r.client}/${r.server}: the tracer lost ${r.byName.lost} events (its by-name counts are low)`);
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
    if ((c === 'before' || s === 'before') && !(BEFORE_CLI && fs.existsSync(BEFORE_CLI))) return skipped.push(`${c}/${s}: no --before DIR with dist/cli.js`), false;
    return true;
  });
  if (!['perf', 'strace', 'none'].includes(opts.tracer)) throw new Error(`--tracer must be perf, strace or none`);
  for (const tool of new Set(['perf', ...(opts.tracer === 'strace' ? ['strace'] : [])])) {
    if (spawnSync(tool, ['--version']).status !== 0) throw new Error(`${tool} is needed (apt-get install ${tool === 'perf' ? 'linux-perf' : tool})`);
  }
  if (spawnSync('perf', ['stat', '-e', COUNTERS_FULL, '--', 'true']).status !== 0) {
    counters = COUNTERS_BASIC;
    log('perf cannot read the syscall tracepoints here: no system call counts in pass 1');
  }
  log(`${envNote}; ${loadNote()}`);
  // Rounds: the pairs take turns (a fresh daemon each time); the counters
  // are the median over the rounds, the names come from the last round.
  const rounds = Number(opts.rounds);
  const runs = pairs.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, [c, s]] of pairs.entries()) {
      log(`round ${round + 1}/${rounds}: ${c}/${s}, ${N} requests ...`);
      runs[i].push(await countPair(c, s, round === rounds - 1));
    }
  }
  const results = runs.map(summarise);
  console.log(report(results, rounds));
  for (const s of skipped) console.log(`- skipped ${s}`);
  if (opts.json) console.log('\n```json\n' + JSON.stringify(results.map(({ rounds: r, ...rest }) => ({ ...rest, rounds: r.map(({ byName, ...x }) => x) })), null, 1) + '\n```');
}

main().catch((err) => {
  log(`count: ${err.stack || err.message}`);
  process.exitCode = 1;
});
