// Git's own simple-ipc (its t/helper/test-tool, built from Git's source by
// bench/git/build-test-tool.sh, outside this repository) as the reference:
// Git's daemon and client against our CLI's daemon and client, with the
// commands of Git's t0052 test.
//
// Daemons:  test-tool simple-ipc run-daemon --name=<path> --threads=8
//           node dist/cli.js run-daemon --name=<path> --threads=8
// Clients:  test-tool simple-ipc <command...> --name=<path>
//           node dist/cli.js <command...> --name=<path>
// A figure is the wall time of the client process, from spawn to exit
// (what a shell measures around the command), with its output checked.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { stopProcess } from './common.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUR_CLI = path.join(REPO, 'dist/cli.js');
/** Where bench/git/build-test-tool.sh puts test-tool when given no directory. */
export const DEFAULT_TEST_TOOL = path.join(os.homedir(), '.cache/simple-ipc-bench/git/test-tool');
export const DAEMON_THREADS = 8;

/**
 * Git's test-tool: $GIT_TEST_TOOL, else the build script's default output.
 * Returns { tool } when it runs and supports simple-ipc, else { reason }.
 */
export function findGitTestTool(env = process.env) {
  const fromEnv = env.GIT_TEST_TOOL;
  const tool = fromEnv || DEFAULT_TEST_TOOL;
  if (!fs.existsSync(tool)) {
    return {
      tool: null,
      reason: fromEnv
        ? `GIT_TEST_TOOL=${fromEnv} does not exist`
        : `no GIT_TEST_TOOL and no ${DEFAULT_TEST_TOOL} (build it with bench/git/build-test-tool.sh)`,
    };
  }
  const r = spawnSync(tool, ['simple-ipc', 'SUPPORTS_SIMPLE_IPC'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) return { tool: null, reason: `${tool} simple-ipc SUPPORTS_SIMPLE_IPC failed (${r.status ?? r.error})` };
  return { tool, reason: null };
}

/**
 * The t0052 commands. `check` validates the client's stdout; the quick
 * variants are a tenth of the work (a smoke test, not for comparing).
 */
export function gitCommands(quick) {
  const batch8 = quick ? 400 : 4000;
  const batch1 = quick ? 500 : 5000;
  const bulk = quick ? 5_000_000 : 50_000_000;
  return [
    {
      id: 'multiple-8',
      title: `multiple, 8 x ${batch8} small requests`,
      args: ['multiple', '--threads=8', '--bytecount=64', `--batchsize=${batch8}`],
      check: multipleCheck(8 * batch8),
    },
    {
      id: 'sendbytes',
      title: `sendbytes, a ${bulk / 1e6} MB request`,
      args: ['sendbytes', `--bytecount=${bulk}`],
      check: (out) => (new RegExp(`^sent:x${String(bulk).padStart(8, '0')} rcvd:x${String(bulk).padStart(8, '0')}\n$`).test(out) ? null : `unexpected output ${JSON.stringify(out.slice(0, 80))}`),
    },
    {
      id: 'multiple-1',
      title: `multiple, 1 x ${batch1} sequential requests`,
      args: ['multiple', '--threads=1', '--bytecount=4', `--batchsize=${batch1}`],
      check: multipleCheck(batch1),
    },
  ];
}

function multipleCheck(expected) {
  return (out) => {
    const lines = out.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const summary = lines.at(-1) ?? '';
    if (lines.length !== expected + 1) return `${lines.length} lines, expected ${expected + 1}`;
    if (!summary.includes(`(good ${expected})`) || !summary.includes('(errors 0)')) return `summary ${JSON.stringify(summary)}`;
    return null;
  };
}

/** The four client/daemon pairings, in the order they take turns. */
export const GIT_PAIRINGS = [
  { client: 'git', server: 'git' },
  { client: 'git', server: 'ours' },
  { client: 'ours', server: 'git' },
  { client: 'ours', server: 'ours' },
];

function command(impl, tool, args) {
  if (impl === 'git') return [tool, ['simple-ipc', ...args]];
  if (impl === 'ours') return [process.execPath, [OUR_CLI, ...args]];
  throw new Error(`unknown implementation ${impl}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(sockPath) {
  return new Promise((resolve) => {
    const s = net.connect(sockPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts a daemon (`git` or `ours`) on sockPath; resolves once a connect
 * succeeds. `track` registers the child for the harness's cleanup.
 */
export async function startDaemon(impl, { tool, sockPath, env, track, timeoutMs = 15000 }) {
  const [file, argv] = command(impl, tool, ['run-daemon', `--name=${sockPath}`, `--threads=${DAEMON_THREADS}`]);
  const child = track(spawn(file, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${impl} daemon exited (${child.exitCode ?? child.signalCode}): ${stderr.trim().slice(-300)}`);
    }
    if (fs.existsSync(sockPath) && (await canConnect(sockPath))) return { child, impl, sockPath, stderr: () => stderr };
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`${impl} daemon not listening on ${sockPath} within ${timeoutMs} ms`);
}

export async function stopDaemon(daemon) {
  await stopProcess(daemon.child, daemon.sockPath);
}

/**
 * Runs one client command to completion; resolves with
 * { seconds, error } (error: null, or why the run does not count).
 */
export function runGitClient(impl, { tool, sockPath, env, track, cmd, limitMs }) {
  const [file, argv] = command(impl, tool, [...cmd.args, `--name=${sockPath}`]);
  const t0 = process.hrtime.bigint();
  const child = track(spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const out = [];
  let err = '';
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('close', (code, sig) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      if (code !== 0) {
        resolve({ seconds, error: `${impl} client exited (${code ?? sig})${sig === 'SIGKILL' ? ` after ${limitMs} ms` : ''}: ${err.trim().slice(-300)}` });
        return;
      }
      const problem = cmd.check(Buffer.concat(out).toString('latin1'));
      resolve({ seconds, error: problem ? `${impl} client: ${problem}` : null });
    });
  });
}

/**
 * The five comparisons with Git from median client times (seconds) keyed
 * 'client/server' per command id: ratio = Git's time / ours (> 1: ours is
 * faster).
 */
export function gitFigures(times) {
  const t = (cmd, pair) => times[cmd]?.[pair] ?? null;
  const r = (git, ours) => (git != null && ours != null && ours > 0 ? git / ours : null);
  return [
    { figure: "our daemon, Git's client, 8 x 4000 small requests", cmd: 'multiple-8', git: 'git/git', ours: 'git/ours' },
    { figure: "our client (CLI multiple), Git's daemon, 8 x 4000", cmd: 'multiple-8', git: 'git/git', ours: 'ours/git' },
    { figure: 'one client, 5000 sequential requests (ours/ours vs git/git)', cmd: 'multiple-1', git: 'git/git', ours: 'ours/ours' },
    { figure: '50 MB request into our daemon (Git\'s client)', cmd: 'sendbytes', git: 'git/git', ours: 'git/ours' },
    { figure: "50 MB request from our client (Git's daemon)", cmd: 'sendbytes', git: 'git/git', ours: 'ours/git' },
  ].map((f) => ({ ...f, git_s: t(f.cmd, f.git), ours_s: t(f.cmd, f.ours), ratio: r(t(f.cmd, f.git), t(f.cmd, f.ours)) }));
}
