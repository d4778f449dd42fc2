#!/usr/bin/env node
// Benchmark harness: simple-ipc (ours) vs a hand-written node:net baseline
// vs a C reference, each as client and as server.
//
//   node bench/run.mjs [--quick] [--runs N] [--threads N]
//                      [--scenarios id,id] [--pairings client/server,...]
//                      [--git auto|skip|only]
//
// --git: Git's own test-tool daemon and client against our CLI's, with the
// commands of Git's t0052 (auto: when $GIT_TEST_TOOL or the default output
// of bench/git/build-test-tool.sh exists; only: nothing else).
//
// Every measurement starts a fresh server in its own process (its resident
// size is read from /proc/<pid>/status) and runs the client in another.
// Each figure is the median over --runs runs; within a scenario the
// pairings take turns (A B C A B C ...). The markdown table goes to stdout,
// progress to stderr, everything to bench/results/latest.json.
//
// --quick is a smoke test for CI: one run, small counts, under a minute.
// It fails only when something breaks (a process dies, a request fails),
// never on speed.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchEnv, compileC, loadNote, median, stopProcess } from './lib/common.mjs';
import { GIT_PAIRINGS, findGitTestTool, gitCommands, gitFigures, runGitClient, startDaemon, stopDaemon } from './lib/git-ref.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUILD = path.join(HERE, 'build');
const RESULTS = path.join(HERE, 'results');
const NODE = process.execPath;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    threads: { type: 'string', default: '4' },
    scenarios: { type: 'string' },
    pairings: { type: 'string' },
    git: { type: 'string', default: 'auto' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 21).join('\n'));
  process.exit(0);
}
const QUICK = opts.quick;
const RUNS = Number(opts.runs ?? (QUICK ? 1 : 5));
const THREADS = Number(opts.threads);
const log = (...a) => console.error(...a);
if (!['auto', 'skip', 'only'].includes(opts.git)) throw new Error(`--git must be auto, skip or only, not ${opts.git}`);
// Every child runs without NODE_EXTRA_CA_CERTS (see benchEnv).
const { env: ENV, note: ENV_NOTE } = benchEnv();
// --quick starts no measurement after this long, and gives each scenario
// an equal share of it (a smoke test must finish within a minute on a
// slow day; what is left out is listed).
const QUICK_BUDGET_MS = 45000;

// ---------------------------------------------------------------- scenarios
const BIG = 50_000_000;
const SMALL = { minSize: 64, maxSize: 2048, expectLen: 4 };
const SCENARIOS = [
  { id: 'small-c1', title: 'small req, c=1', kind: 'client', primary: 'rps',
    spec: { ...SMALL, concurrency: 1, n: QUICK ? 300 : 4000, warmup: QUICK ? 200 : 1000 } },
  { id: 'small-c8', title: 'small req, c=8', kind: 'client', primary: 'rps',
    spec: { ...SMALL, concurrency: 8, n: QUICK ? 600 : 10000, warmup: QUICK ? 300 : 2000 } },
  { id: 'small-c64', title: 'small req, c=64', kind: 'client', primary: 'rps',
    spec: { ...SMALL, concurrency: 64, n: QUICK ? 1000 : 20000, warmup: QUICK ? 500 : 4000 } },
  { id: 'bulk-up', title: '50 MB request', kind: 'client', primary: 'mbps',
    spec: { bulkSize: BIG, expectLen: 4, concurrency: 1, n: QUICK ? 1 : 5, warmup: QUICK ? 0 : 2 } },
  { id: 'bulk-down', title: '50 MB reply', kind: 'client', primary: 'mbps',
    spec: { request: 'big50', expectLen: BIG, concurrency: 1, n: QUICK ? 1 : 5, warmup: QUICK ? 0 : 2 } },
  { id: 'stream', title: '10000-chunk reply', kind: 'client', primary: 'ttlb_ms',
    spec: { request: 'chunks', expectLen: 10000 * 81, concurrency: 1, n: QUICK ? 1 : 10, warmup: QUICK ? 1 : 2 } },
  // Same reply, but our handler queues every reply.write() without awaiting
  // each one (it awaits them all at the end); the other servers do what
  // they do for 'chunks'. Separates per-write round trips from streaming.
  { id: 'stream-nowait', title: '10000-chunk reply, writes not awaited', kind: 'client', primary: 'ttlb_ms', full: true,
    spec: { request: 'chunksq', expectLen: 10000 * 81, concurrency: 1, n: 10, warmup: 2 } },
  { id: 'idle-1000', title: '1000 slow clients', kind: 'idle', primary: 'rss_mb',
    clients: 1000, intervalMs: 1000,
    spec: { ...SMALL, concurrency: 1, n: 0, durationS: QUICK ? 0.5 : 3, timeoutMs: QUICK ? 250 : 2000 } },
];
// metric -> how to read it
const METRICS = {
  rps: { better: 'higher', unit: 'req/s' },
  mbps: { better: 'higher', unit: 'MB/s' },
  ttlb_ms: { better: 'lower', unit: 'ms' },
  p50_ms: { better: 'lower', unit: 'ms' },
  p99_ms: { better: 'lower', unit: 'ms' },
  rss_mb: { better: 'lower', unit: 'MB' },
  fast_p99_ms: { better: 'lower', unit: 'ms' },
};

// ----------------------------------------------------------------- pairings
// client/server. c-fresh = the C programs with -F (a new buffer per
// message), shown for the bulk scenarios only: it prices the page faults
// that any API returning a fresh Buffer pays.
const ALL_PAIRINGS = [
  { client: 'ours', server: 'ours' },
  { client: 'baseline', server: 'baseline' },
  { client: 'c', server: 'c' },
  { client: 'ours', server: 'c' },
  { client: 'c', server: 'ours' },
  { client: 'baseline', server: 'ours' },
  // The synchronous client, sequential (it blocks its process).
  { client: 'ours-sync', server: 'c', only: ['small-c1'] },
  // Our server with a subscriber on its diagnostics channels: publishing
  // costs nothing when nobody subscribes; this is the cost when somebody
  // does. Skipped while the library publishes nothing there.
  { client: 'ours', server: 'ours+dc', only: ['small-c8'] },
  { client: 'baseline', server: 'c', full: true },
  { client: 'c', server: 'baseline', full: true },
  { client: 'c-fresh', server: 'c-fresh', full: true, only: ['bulk-up', 'bulk-down'] },
];
const pairName = (p) => `${p.client}/${p.server}`;

// --------------------------------------------------------------- processes
const children = new Set();
let tmpDir = null;

function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  children.clear();
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = null;
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`\ninterrupted (${sig}), cleaning up`);
    cleanup();
    process.exit(130);
  });
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// Resolve with the first stdout line of a child (or reject on exit/timeout).
function firstLine(child, what, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buf = '';
    let stderr = '';
    const timer = setTimeout(() => done(new Error(`${what}: no output within ${timeoutMs} ms`)), timeoutMs);
    const onData = (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(null, buf.slice(0, nl));
    };
    const onErr = (d) => {
      stderr += d;
    };
    const onExit = (code, sig) =>
      done(new Error(`${what} exited (${code ?? sig}) before it was ready: ${stderr.trim().slice(-500)}`));
    function done(err, line) {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stderr.off('data', onErr);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line);
    }
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.stderr.on('data', onErr);
    child.on('exit', onExit);
  });
}

function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1]) || null;
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return { rssKb: null, hwmKb: null };
  }
}

let sockCounter = 0;
const nextSockPath = () => path.join(tmpDir, `s${sockCounter++}.sock`);

async function startServer(impl, sockPath) {
  let child;
  if (impl === 'c' || impl === 'c-fresh') {
    const args = ['-p', sockPath, '-t', String(THREADS)];
    if (impl === 'c-fresh') args.push('-F');
    child = spawn(path.join(BUILD, 'ref_server'), args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    child = spawn(NODE, [path.join(HERE, 'lib/server-proc.mjs'), impl, sockPath, String(THREADS)], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }
  track(child);
  const line = await firstLine(child, `${impl} server`, 15000);
  if (line.trim() !== 'ready') throw new Error(`${impl} server said ${JSON.stringify(line)}`);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  return { child, impl, sockPath, stderr: () => stderr };
}

async function stopServer(server) {
  const { child } = server;
  const status = procStatus(child.pid);
  await stopProcess(child, server.sockPath);
  return status;
}

function cArgs(sockPath, spec, fresh) {
  const a = ['-p', sockPath, '-n', String(spec.n), '-c', String(spec.concurrency), '-w', String(spec.warmup ?? 0)];
  if (spec.durationS) a.push('-d', String(spec.durationS));
  if (spec.timeoutMs) a.push('-T', String(spec.timeoutMs));
  if (spec.request != null) a.push('-r', spec.request);
  else if (spec.bulkSize) a.push('-B', String(spec.bulkSize));
  else a.push('-s', `${spec.minSize}:${spec.maxSize}`);
  if (spec.expectLen != null) a.push('-e', String(spec.expectLen));
  if (fresh) a.push('-F');
  return a;
}

// Run a client process to completion; resolve with its parsed JSON result.
function runClient(impl, sockPath, spec) {
  const limitMs = QUICK ? 10000 : 300000;
  let child;
  if (impl === 'c' || impl === 'c-fresh') {
    child = spawn(path.join(BUILD, 'ref_client'), cArgs(sockPath, spec, impl === 'c-fresh'), {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } else {
    child = spawn(NODE, [path.join(HERE, 'lib/client-proc.mjs'), JSON.stringify({ impl, path: sockPath, ...spec })], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }
  track(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, limitMs);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${impl} client exited (${code ?? sig})${sig === 'SIGKILL' ? ` after ${limitMs} ms` : ''}: ${err.trim().slice(-500)}`));
        return;
      }
      try {
        const r = JSON.parse(out.trim().split('\n').pop());
        for (const k of ['p50_ms', 'p99_ms', 'mean_ms', 'max_ms']) if (r[k] != null && r[k] < 0) r[k] = null;
        resolve(r);
      } catch {
        reject(new Error(`${impl} client printed no result: ${out.slice(0, 200)} ${err.slice(-300)}`));
      }
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 3) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);

// ------------------------------------------------------------- measurements
// One measurement: fresh server, one client run. Returns { metrics, error }.
async function measure(scenario, pairing) {
  const sockPath = nextSockPath();
  let server;
  try {
    server = await startServer(pairing.server, sockPath);
  } catch (err) {
    return { metrics: {}, error: err.message };
  }
  let metrics = {};
  let error = null;
  try {
    if (scenario.kind === 'idle') metrics = await measureIdle(scenario, pairing, server);
    else {
      const r = await runClient(pairing.client, sockPath, scenario.spec);
      metrics = {
        rps: round(r.rps, 1),
        mbps: round(r.mbps, 1),
        p50_ms: round(r.p50_ms, 4),
        p99_ms: round(r.p99_ms, 4),
        ttlb_ms: round(r.p50_ms, 4),
        ok: r.ok,
        errors: r.errors,
        timeouts: r.timeouts,
      };
      if (r.errors || r.timeouts || r.ok === 0) {
        error = `${r.errors} errors, ${r.timeouts} timeouts of ${r.requests}: ${r.first_error}`;
      }
    }
  } catch (err) {
    error = err.message;
  }
  const alive = server.child.exitCode === null && server.child.signalCode === null;
  const st = await stopServer(server);
  if (!alive && !error) error = `${pairing.server} server died: ${server.stderr().trim().slice(-300)}`;
  metrics.server_hwm_mb = st.hwmKb ? round(st.hwmKb / 1024, 1) : null;
  return { metrics, error };
}

// 1000 slow clients hold connections with half-sent requests while one
// fast client (the pairing's client) makes requests for a while.
async function measureIdle(scenario, pairing, server) {
  const pid = server.child.pid;
  await sleep(QUICK ? 100 : 500);
  const idle = procStatus(pid).rssKb;
  const slow = track(
    spawn(NODE, [path.join(HERE, 'lib/slow-clients.mjs'), server.sockPath, String(scenario.clients), String(scenario.intervalMs)], {
      env: ENV,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  let slowOut = '';
  try {
    const first = JSON.parse(await firstLine(slow, 'slow clients', QUICK ? 10000 : 30000));
    slow.stdout.on('data', (d) => (slowOut += d));
    await sleep(QUICK ? 200 : 500);
    let peak = procStatus(pid).rssKb ?? 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, procStatus(pid).rssKb ?? 0);
    }, 100);
    let fast;
    try {
      fast = await runClient(pairing.client, server.sockPath, scenario.spec);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, procStatus(pid).rssKb ?? 0);
    const exited = new Promise((r) => slow.once('exit', r));
    slow.kill('SIGTERM');
    await exited;
    const last = slowOut.trim().split('\n').filter(Boolean).pop();
    const dropped = last ? JSON.parse(last).dropped : null;
    return {
      rss_mb: round(peak / 1024, 1),
      rss_idle_mb: idle ? round(idle / 1024, 1) : null,
      rss_delta_mb: idle ? round((peak - idle) / 1024, 1) : null,
      connected: first.connected,
      connect_failed: first.failed,
      dropped_by_server: dropped,
      fast_ok: fast.ok,
      fast_errors: fast.errors,
      fast_timeouts: fast.timeouts,
      fast_p50_ms: round(fast.p50_ms, 4),
      fast_p99_ms: round(fast.p99_ms, 4),
      fast_first_error: fast.first_error,
    };
  } finally {
    if (slow.exitCode === null && slow.signalCode === null) slow.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------- setup
// Is our library built and loadable? Checked in a child so a broken addon
// cannot take the harness down.
function probeOurs() {
  const r = spawnSync(
    NODE,
    ['--input-type=module', '-e', `import { loadOurs } from ${JSON.stringify(path.join(HERE, 'lib/common.mjs'))};
       const { reason } = await loadOurs(); if (reason) { console.log(reason); process.exit(1); }`],
    { encoding: 'utf8', timeout: 30000, env: ENV },
  );
  return r.status === 0 ? null : (r.stdout || r.stderr || 'probe failed').trim().split('\n').pop();
}

// Does the library publish on its diagnostics channels? A server in a
// child, one request, a subscriber counting what arrives.
function probeDiagnostics() {
  const common = JSON.stringify(path.join(HERE, 'lib/common.mjs'));
  const sock = path.join(tmpDir, 'dc-probe.sock');
  const script = `import dc from 'node:diagnostics_channel';
    import { loadOurs, DIAGNOSTICS_CHANNELS } from ${common};
    const { lib } = await loadOurs();
    const seen = {};
    for (const n of DIAGNOSTICS_CHANNELS) dc.subscribe(n, () => (seen[n] = (seen[n] ?? 0) + 1));
    const server = await lib.createServer(${JSON.stringify(sock)}, () => 'pong');
    await lib.sendCommand(${JSON.stringify(sock)}, 'ping');
    await new Promise((r) => setTimeout(r, 100));
    await server.close();
    const missing = DIAGNOSTICS_CHANNELS.filter((n) => !seen[n]);
    console.log(missing.length ? 'nothing published on ' + missing.join(', ') + ' (channels not in this build yet)' : 'ok');`;
  const r = spawnSync(NODE, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30000, env: ENV });
  const said = (r.stdout || '').trim().split('\n').pop();
  if (r.status === 0 && said === 'ok') return null;
  return said || `probe failed (${r.status ?? r.error}): ${(r.stderr || '').trim().slice(-200)}`;
}

function cpuModel() {
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) return m[1].trim();
  } catch {}
  return os.cpus()[0]?.model ?? 'unknown';
}

// ------------------------------------------------------------------ output
const fmtInt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
function fmtMs(x) {
  if (x == null) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}
function fmtPrimary(s, m) {
  if (!m) return '-';
  switch (s.primary) {
    case 'rps': return m.rps == null ? '-' : `${fmtInt.format(m.rps)} req/s`;
    case 'mbps': return m.mbps == null ? '-' : `${fmtInt.format(m.mbps)} MB/s`;
    case 'ttlb_ms': return m.ttlb_ms == null ? '-' : `${fmtMs(m.ttlb_ms)} ms`;
    case 'rss_mb': return m.rss_mb == null ? '-' : `RSS ${m.rss_mb} MB (idle ${m.rss_idle_mb})`;
  }
  return '-';
}
const fmtRatio = (r) => (r == null ? '-' : `${r.toFixed(2)}x`);

// Relative performance: > 1 means better than the reference.
function ratio(metric, value, ref) {
  if (value == null || ref == null || value <= 0 || ref <= 0) return null;
  return round(METRICS[metric].better === 'higher' ? value / ref : ref / value, 3);
}

// ------------------------------------------------------------------- main
function selectPairings(oursReason, skipped) {
  let pairings = ALL_PAIRINGS.filter((p) => !QUICK || !p.full);
  if (opts.pairings) {
    const want = new Set(opts.pairings.split(','));
    const unknown = [...want].filter((w) => !ALL_PAIRINGS.some((p) => pairName(p) === w));
    if (unknown.length) throw new Error(`unknown pairing(s) ${unknown.join(', ')}; known: ${ALL_PAIRINGS.map(pairName).join(', ')}`);
    pairings = ALL_PAIRINGS.filter((p) => want.has(pairName(p)));
  }
  const usesOurs = (p) => p.client.startsWith('ours') || p.server.startsWith('ours');
  if (oursReason) {
    for (const p of pairings) if (usesOurs(p)) skipped.push({ pairing: pairName(p), reason: oursReason });
    return pairings.filter((p) => !usesOurs(p));
  }
  if (pairings.some((p) => p.server === 'ours+dc')) {
    const dcReason = probeDiagnostics();
    if (dcReason) {
      log(`SKIPPING ours/ours+dc (diagnostics_channel overhead): ${dcReason}`);
      skipped.push({ pairing: 'ours/ours+dc', reason: `diagnostics_channel overhead row: ${dcReason}` });
      return pairings.filter((p) => p.server !== 'ours+dc');
    }
  }
  return pairings;
}

function selectScenarios() {
  if (opts.git === 'only') return [];
  let scenarios = SCENARIOS.filter((s) => !QUICK || !s.full);
  if (opts.scenarios) {
    const want = new Set(opts.scenarios.split(','));
    const unknown = [...want].filter((w) => !SCENARIOS.some((s) => s.id === w));
    if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`);
    scenarios = SCENARIOS.filter((s) => want.has(s.id));
  }
  return scenarios;
}

// The scenarios x pairings, alternating within each scenario. --quick:
// each scenario gets an equal share of what is left of `budgetMs`, so a
// slow machine trims pairings everywhere instead of dropping the last
// scenarios; the first pairing always runs.
async function runScenarios(scenarios, pairings, budgetMs, failures, budgetSkips) {
  const t0 = Date.now();
  const results = [];
  for (const [si, s] of scenarios.entries()) {
    const sStart = Date.now();
    const sBudget = (budgetMs - (sStart - t0)) / (scenarios.length - si);
    let sCount = 0;
    const ps = pairings.filter((p) => !p.only || p.only.includes(s.id));
    const rows = ps.map((p) => ({ scenario: s.id, client: p.client, server: p.server, runs: [], errors: [] }));
    for (let run = 0; run < RUNS; run++) {
      for (const row of rows) {
        if (QUICK && sCount > 0 && (Date.now() - sStart > sBudget || Date.now() - t0 > budgetMs)) {
          budgetSkips.push(`${s.id} ${row.client}/${row.server}`);
          continue;
        }
        sCount++;
        const label = `${s.id} ${row.client}/${row.server} run ${run + 1}/${RUNS}`;
        const tm = Date.now();
        const { metrics, error } = await measure(s, row);
        row.runs.push(metrics);
        if (error) {
          row.errors.push(error);
          failures.push(`${label}: ${error}`);
        }
        log(`${label}: ${fmtPrimary(s, metrics)} [${((Date.now() - tm) / 1000).toFixed(1)} s]${error ? `  ERROR ${error}` : ''}`);
      }
    }
    for (const row of rows) {
      if (row.runs.length === 0) continue;
      const keys = new Set(row.runs.flatMap((m) => Object.keys(m)));
      row.median = {};
      for (const k of keys) {
        const vals = row.runs.map((m) => m[k]);
        row.median[k] = vals.every((v) => typeof v === 'number' || v == null) ? median(vals) : vals[vals.length - 1];
      }
      results.push(row);
    }
  }
  addRatios(results);
  return results;
}

// Ratios against baseline/baseline and c/c of this same invocation.
function addRatios(results) {
  for (const row of results) {
    const ref = (c, sv) => results.find((r) => r.scenario === row.scenario && r.client === c && r.server === sv);
    const base = ref('baseline', 'baseline');
    const cref = ref('c', 'c');
    row.vs_baseline = {};
    row.vs_c = {};
    for (const m of Object.keys(METRICS)) {
      if (row.median[m] === undefined) continue;
      row.vs_baseline[m] = base ? ratio(m, row.median[m], base.median[m]) : null;
      row.vs_c[m] = cref ? ratio(m, row.median[m], cref.median[m]) : null;
    }
  }
}

// Git's test-tool against our CLI: each t0052 command, the four
// client/daemon pairings taking turns, a fresh daemon per run. Returns
// { commands, times } (times: median seconds by command id and
// 'client/server').
// --quick: like the scenarios, each command gets an equal share of
// `budgetMs` (its first pairing always runs).
async function runGit(tool, failures, budgetMs, budgetSkips) {
  const commands = gitCommands(QUICK);
  const times = {};
  const rows = [];
  const t0 = Date.now();
  for (const [ci, cmd] of commands.entries()) {
    const runs = Object.fromEntries(GIT_PAIRINGS.map((p) => [pairName(p), []]));
    const cStart = Date.now();
    const cBudget = (budgetMs - (cStart - t0)) / (commands.length - ci);
    for (let run = 0; run < RUNS; run++) {
      for (const [pi, p] of GIT_PAIRINGS.entries()) {
        if (QUICK && (run > 0 || pi > 0) && Date.now() - cStart > cBudget) {
          budgetSkips.push(`git ${cmd.id} ${pairName(p)}`);
          continue;
        }
        const label = `git ${cmd.id} ${pairName(p)} run ${run + 1}/${RUNS}`;
        const { seconds, error } = await measureGit(tool, cmd, p);
        if (error) failures.push(`${label}: ${error}`);
        else runs[pairName(p)].push(seconds);
        log(`${label}: ${error ? `ERROR ${error}` : `${seconds.toFixed(3)} s`}`);
      }
    }
    times[cmd.id] = {};
    for (const [pair, secs] of Object.entries(runs)) {
      times[cmd.id][pair] = median(secs);
      rows.push({ command: cmd.id, title: cmd.title, args: cmd.args.join(' '), pairing: pair, runs_s: secs.map((x) => round(x, 4)), median_s: round(median(secs), 4) });
    }
  }
  return { rows, times };
}

async function measureGit(tool, cmd, pairing) {
  const sockPath = nextSockPath();
  let daemon;
  try {
    daemon = await startDaemon(pairing.server, { tool, sockPath, env: ENV, track });
  } catch (err) {
    return { seconds: null, error: err.message };
  }
  try {
    const r = await runGitClient(pairing.client, { tool, sockPath, env: ENV, track, cmd, limitMs: QUICK ? 20000 : 300000 });
    if (!r.error && (daemon.child.exitCode !== null || daemon.child.signalCode !== null)) {
      r.error = `${pairing.server} daemon died: ${daemon.stderr().trim().slice(-300)}`;
    }
    return r;
  } finally {
    await stopDaemon(daemon);
  }
}

// The summary figures: ours/ours against baseline/baseline in this same
// invocation, and the cost of a diagnostics_channel subscriber.
function benchSummary(results) {
  const vs = (scenario, metric) => results.find((r) => r.scenario === scenario && r.client === 'ours' && r.server === 'ours')?.vs_baseline?.[metric] ?? null;
  const rps = (server) => results.find((r) => r.scenario === 'small-c8' && r.client === 'ours' && r.server === server)?.median?.rps ?? null;
  const dc = rps('ours') && rps('ours+dc') ? round(rps('ours+dc') / rps('ours'), 3) : null;
  return [
    { figure: 'ours/ours at concurrency 8 vs baseline/baseline (req/s)', value: vs('small-c8', 'rps') },
    { figure: '10000-chunk reply, every write() awaited, vs baseline (time to last byte)', value: vs('stream', 'ttlb_ms') },
    { figure: 'receiving 50 MB, server side (50 MB request) vs baseline', value: vs('bulk-up', 'mbps') },
    { figure: 'receiving 50 MB, client side (50 MB reply) vs baseline', value: vs('bulk-down', 'mbps') },
    { figure: 'diagnostics_channel: small req c=8 with a subscriber vs without (req/s)', value: dc },
  ];
}

// ------------------------------------------------------------- report
function scenarioTable(results, skipped) {
  const lines = [];
  lines.push('| scenario | client/server | result | p50 ms | p99 ms | vs baseline | vs C | notes |');
  lines.push('| --- | --- | --- | ---: | ---: | ---: | ---: | --- |');
  for (const row of results) {
    const s = SCENARIOS.find((x) => x.id === row.scenario);
    const m = row.median;
    const idle = s.kind === 'idle';
    const notes = [];
    if (idle) {
      notes.push(`${m.connected} slow connected (RSS +${m.rss_delta_mb} MB)`);
      if (m.dropped_by_server) notes.push(`${m.dropped_by_server} dropped by server`);
      notes.push(`fast client: ${m.fast_ok} ok`);
      if (m.fast_timeouts) notes.push(`${m.fast_timeouts} timeouts`);
      if (m.fast_errors) notes.push(`${m.fast_errors} errors`);
    }
    if (row.server === 'ours+dc') notes.push('subscriber on simple-ipc:server:request/response');
    if (row.errors.length) notes.push(`FAILED ${row.errors.length}/${row.runs.length} runs: ${row.errors[0].slice(0, 80)}`);
    const p50 = idle ? m.fast_p50_ms : s.primary === 'ttlb_ms' ? null : m.p50_ms;
    const p99 = idle ? m.fast_p99_ms : m.p99_ms;
    lines.push(`| ${s.title} | ${row.client}/${row.server} | ${fmtPrimary(s, m)} | ${fmtMs(p50)} | ${fmtMs(p99)} | ` +
      `${fmtRatio(row.vs_baseline[s.primary])} | ${fmtRatio(row.vs_c[s.primary])} | ${notes.join('; ')} |`);
  }
  lines.push('');
  lines.push('vs baseline / vs C: relative performance on the result column against baseline/baseline and c/c ' +
    'measured in this same invocation; > 1 is better. Small requests: new connection each, 64..2048-byte ' +
    'requests, "pong" reply. 10000-chunk reply: time to last byte. 1000 slow clients: server RSS while they ' +
    'hold half-sent requests; p50/p99 are a fast client\'s meanwhile.');
  for (const sk of skipped) lines.push(`- skipped ${sk.pairing}: ${sk.reason}`);
  return lines;
}

function gitTables(git, tool) {
  const lines = [];
  lines.push(`Git's test-tool (${tool}) against our CLI (dist/cli.js), the commands of Git's t0052, daemons with ` +
    `--threads=8, a fresh daemon per run, the four pairings taking turns; client process wall time, median of ${RUNS}` +
    `${QUICK ? ' (--quick: a tenth of the work, not for comparing)' : ''}:`);
  lines.push('');
  lines.push('| command | git/git | git/ours | ours/git | ours/ours |');
  lines.push('| --- | ---: | ---: | ---: | ---: |');
  for (const cmd of gitCommands(QUICK)) {
    const t = git.times[cmd.id] ?? {};
    lines.push(`| ${cmd.args.join(' ')} | ${GIT_PAIRINGS.map((p) => (t[pairName(p)] == null ? '-' : `${t[pairName(p)].toFixed(3)} s`)).join(' | ')} |`);
  }
  lines.push('');
  lines.push('client/daemon. Ratio = Git\'s time / ours (above 1: ours is faster):');
  lines.push('');
  lines.push('| figure | Git s | ours s | ratio |');
  lines.push('| --- | ---: | ---: | ---: |');
  for (const f of gitFigures(git.times)) {
    lines.push(`| ${f.figure} | ${f.git_s?.toFixed(3) ?? '-'} | ${f.ours_s?.toFixed(3) ?? '-'} | ${f.ratio?.toFixed(2) ?? '-'} |`);
  }
  return lines;
}

function summaryTable(targets) {
  const lines = [`Summary (this run; ratios above 1: ours is better${QUICK ? '; --quick: not for comparing' : ''}):`, ''];
  lines.push('| figure | ratio |');
  lines.push('| --- | ---: |');
  for (const t of targets) lines.push(`| ${t.figure} | ${fmtRatio(t.value)} |`);
  return lines;
}

async function main() {
  const t0 = Date.now();
  const loadStart = loadNote();
  for (const w of compileC(BUILD)) log(w);
  log(`compiled bench/c -> ${path.relative(process.cwd(), BUILD) || BUILD}`);
  log(ENV_NOTE);
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-bench-'));
  const oursReason = probeOurs();
  if (oursReason) log(`SKIPPING pairings with "ours": our library is not available (${oursReason})`);
  const skipped = [];
  const pairings = selectPairings(oursReason, skipped);
  const scenarios = selectScenarios();

  // Git's test-tool: when it is there (CI does not build it) and our CLI is.
  const gitTool = opts.git === 'skip' ? { tool: null, reason: '--git=skip' } : findGitTestTool();
  if (gitTool.tool && oursReason) Object.assign(gitTool, { tool: null, reason: oursReason });
  if (!gitTool.tool) {
    if (opts.git === 'only') throw new Error(`--git=only: ${gitTool.reason}`);
    log(`Git's test-tool comparison skipped: ${gitTool.reason}`);
  }

  const failures = [];
  const budgetSkips = []; // --quick only: measurements left out to stay under a minute
  // --quick: the Git commands (a tenth of the work) get 10 s of the budget.
  const gitBudgetMs = gitTool.tool ? 10000 : 0;
  const results = await runScenarios(scenarios, pairings, QUICK_BUDGET_MS - gitBudgetMs, failures, budgetSkips);
  const git = gitTool.tool ? await runGit(gitTool.tool, failures, gitBudgetMs, budgetSkips) : null;
  const loadEnd = loadNote();

  const summary = benchSummary(results);
  const lines = [];
  lines.push(`simple-ipc benchmark${QUICK ? ' (--quick: smoke test, not for comparing)' : ''}: ` +
    `Node ${process.version}, ${cpuModel()}, ${os.cpus().length} cores, ${RUNS} run(s) per figure (median), ` +
    `server threads ${THREADS}. ${ENV_NOTE}. Machine: ${loadStart} at the start, ${loadEnd.replace('load average ', '')} at the end.`);
  lines.push('');
  if (results.length) lines.push(...scenarioTable(results, skipped), '', ...summaryTable(summary), '');
  if (git) lines.push(...gitTables(git, gitTool.tool));
  else lines.push(`- Git's test-tool comparison skipped: ${gitTool.reason}`);
  if (budgetSkips.length) lines.push('', `- skipped to keep --quick under a minute: ${budgetSkips.join(', ')}`);
  console.log(lines.join('\n'));

  const out = {
    date: new Date().toISOString(),
    quick: QUICK,
    runs: RUNS,
    server_threads: THREADS,
    node: process.version,
    cpu: cpuModel(),
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    total_memory_mb: Math.round(os.totalmem() / 2 ** 20),
    environment: ENV_NOTE,
    load: { start: loadStart, end: loadEnd },
    ours: { available: !oursReason, reason: oursReason },
    ratio_meaning: 'relative performance vs the reference pairing of this run: value/ref for higher-is-better metrics, ref/value for lower-is-better; > 1 is better',
    metrics: METRICS,
    scenarios: scenarios.map(({ id, title, kind, primary, spec, clients, intervalMs }) => ({ id, title, kind, primary, spec, clients, intervalMs })),
    skipped,
    quick_budget_skipped: budgetSkips,
    results,
    summary,
    git: git ? { tool: gitTool.tool, runs: git.rows, figures: gitFigures(git.times) } : { skipped: gitTool.reason },
    failures,
    elapsed_s: round((Date.now() - t0) / 1000, 1),
  };
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'latest.json'), JSON.stringify(out, null, 2) + '\n');
  log(`wrote ${path.join(RESULTS, 'latest.json')} (${out.elapsed_s} s)`);
  if (failures.length) {
    log(`\n${failures.length} measurement(s) failed:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main()
  .catch((err) => {
    log(`bench: ${err.stack || err.message}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
