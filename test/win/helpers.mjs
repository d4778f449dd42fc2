// Helpers of the Windows suite (vitest, run under Wine by `npm run
// test:win`, or on Windows with
// `npx vitest run --config test/win/vitest.config.mjs`). `t` is the test's
// context: what a helper opens is closed when the test ends.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);

/** The package as users get it (compiled lib/). */
export const sipc = require(path.join(repoRoot, 'dist', 'index.js'));
export const { testAppHandler, bigRow } = require(path.join(repoRoot, 'dist', 'test-app.js'));
export const fixtures = path.join(repoRoot, 'test', 'fixtures');

function loadProbe() {
  const file = process.env.SIPC_WINTEST_ADDON || path.join(repoRoot, '.wine-ci', 'build', 'sipc_wintest.node');
  try {
    return require(file);
  } catch {
    return null;
  }
}

/** Win32 probes (test/win/native/wintest.c), or null when not built. */
export const probe = loadProbe();
export const wineVersion = probe ? probe.isWine() : process.env.UNDER_WINE ? 'unknown' : null;
export const underWine = wineVersion !== null;

export const NEEDS_PROBE = !probe && 'the Win32 probe addon (sipc_wintest.node) is not built: npm run test:win builds it';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A new empty directory, removed after the test. */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-'));
  t.onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A path for a server in a fresh directory. */
export function ipcPath(t, name = 'test.ipc') {
  return path.join(tempDir(t), name);
}

let unique = 0;
/** A pipe name of its own, for tests that use pipe names directly. */
export function uniquePipeName(tag = 'pipe') {
  return `\\\\.\\pipe\\sipc-test-${process.pid}-${Date.now()}-${++unique}-${tag}`;
}

// What this runtime (Windows, or Wine) does, probed once with bare pipes
// of the probe addon, never with the code under test. A test skips only
// when its probe shows the runtime cannot show the behaviour; every
// answer is printed. Without the probe addon nothing is skipped for this.
const ERROR_SUCCESS = 0;
const ERROR_ACCESS_DENIED = 5;
const runtime = wineVersion ? `Wine ${wineVersion}` : 'Windows';

/** Does a second CreateNamedPipeW with FILE_FLAG_FIRST_PIPE_INSTANCE on a taken name fail? */
function probeFirstInstance() {
  const name = uniquePipeName('probe-first-instance');
  const first = probe.createPipe(name, 1, 0);
  if (first.error !== ERROR_SUCCESS) return { can: true, answer: `could not create the probe pipe (error ${first.error}): not skipping` };
  const second = probe.createPipe(name, 1, 0);
  probe.closePipe(first.id);
  if (second.id !== undefined) probe.closePipe(second.id);
  return {
    can: second.error === ERROR_ACCESS_DENIED,
    answer: `a second instance with FILE_FLAG_FIRST_PIPE_INSTANCE on a taken name: ${second.error === ERROR_SUCCESS ? 'created' : `error ${second.error}`}`,
  };
}

/** Does opening a pipe whose DACL grants nothing (D:P) fail with ERROR_ACCESS_DENIED? */
function probeDaclEnforced() {
  const name = uniquePipeName('probe-dacl');
  const pipe = probe.createPipe(name, 1, 0, 'D:P');
  if (pipe.error !== ERROR_SUCCESS) return { can: true, answer: `could not create the probe pipe (error ${pipe.error}): not skipping` };
  const opened = probe.tryOpen(name);
  probe.closePipe(pipe.id);
  return {
    can: opened === ERROR_ACCESS_DENIED,
    answer: `opening a pipe whose DACL grants nothing (D:P): ${opened === ERROR_SUCCESS ? 'opened' : `error ${opened}`}`,
  };
}

const firstInstance = probe ? probeFirstInstance() : { can: true, answer: 'not probed (no probe addon)' };
const daclEnforced = probe ? probeDaclEnforced() : { can: true, answer: 'not probed (no probe addon)' };
console.log(`runtime probes (${runtime}): ${firstInstance.answer}; ${daclEnforced.answer}`);

// Skip reasons (false: run). Printed by the test runner and listed at the
// end of `npm run test:win`.
export const NEEDS_WINDOWS_FIRST_INSTANCE =
  !firstInstance.can && `${runtime} ignores FILE_FLAG_FIRST_PIPE_INSTANCE (probe: ${firstInstance.answer})`;
export const NEEDS_WINDOWS_DACL = !daclEnforced.can && `${runtime} does not enforce pipe DACLs (probe: ${daclEnforced.answer})`;

/**
 * Git's real path of `p`, written out independently of native/win: the
 * root as written (path.win32's root: `C:\`, `\\srv\share\`, ...), or for a
 * relative path the final path of the current directory; then each
 * component in turn: `.` dropped, `..` goes up, a symbolic link or junction
 * (lstat) replaced by its target (readlink); only the last may be missing.
 */
export function gitRealPath(p) {
  const root = path.win32.parse(p).root;
  let resolved = root !== '' ? root : fs.realpathSync.native(process.cwd());
  const todo = p.slice(root.length).split(/[\\/]+/).filter((c) => c !== '');
  let links = 0;
  while (todo.length > 0) {
    const component = todo.shift();
    if (component === '.') continue;
    if (component === '..') {
      resolved = path.win32.dirname(resolved);
      continue;
    }
    resolved += (/[\\/]$/.test(resolved) ? '' : '\\') + component;
    let stat;
    try {
      stat = fs.lstatSync(resolved);
    } catch (error) {
      if (todo.length > 0) throw error;
      continue;
    }
    if (!stat.isSymbolicLink()) continue;
    if (++links > 32) throw Object.assign(new Error('too many links'), { code: 'ELOOP' });
    const target = fs.readlinkSync(resolved);
    const targetRoot = path.win32.parse(target).root;
    resolved = targetRoot !== '' ? targetRoot : path.win32.dirname(resolved);
    todo.unshift(...target.slice(targetRoot.length).split(/[\\/]+/).filter((c) => c !== ''));
  }
  return resolved;
}

/** Git's pipe name for `p`: its real path, `C:` -> `C_`, `/` -> `\`, under `\\.\pipe\`. */
export function gitPipeName(p) {
  return '\\\\.\\pipe\\' + gitRealPath(p).replace(/^([A-Za-z]):/, '$1_').replace(/\//g, '\\');
}

/** Starts a server that the test closes (at once) when it ends. */
export async function serve(t, p, handler = testAppHandler, options = {}) {
  const server = await sipc.createServer(p, handler, options);
  t.onTestFinished(() => server.close({ force: true }));
  return server;
}

/** A request or response as pkt-lines and a flush. */
export function frame(payload) {
  const data = Buffer.from(payload);
  const parts = [];
  for (let i = 0; i < data.length; i += 65516) {
    const piece = data.subarray(i, i + 65516);
    parts.push(Buffer.from((piece.length + 4).toString(16).padStart(4, '0')), piece);
  }
  parts.push(Buffer.from('0000'));
  return Buffer.concat(parts);
}

/** Parses pkt-lines: { payload, complete } (complete: the flush was seen). */
export function unframe(bytes) {
  const parts = [];
  let i = 0;
  while (i + 4 <= bytes.length) {
    const len = parseInt(bytes.subarray(i, i + 4).toString('latin1'), 16);
    if (len === 0) return { payload: Buffer.concat(parts), complete: true, rest: bytes.subarray(i + 4) };
    if (i + len > bytes.length) break;
    parts.push(bytes.subarray(i + 4, i + len));
    i += len;
  }
  return { payload: Buffer.concat(parts), complete: false, rest: Buffer.alloc(0) };
}

/** A raw `net` connection to a pipe, opened and kept until the test ends. */
export async function rawConnect(t, pipeName) {
  const socket = net.connect(pipeName);
  socket.on('error', () => {});
  t.onTestFinished(() => socket.destroy());
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/**
 * Sends raw bytes over `net` and collects what comes back until the other
 * side ends (EOF or an error such as EPIPE after a disconnect).
 */
export function rawExchange(pipeName, bytes) {
  return new Promise((resolve) => {
    const socket = net.connect(pipeName);
    const chunks = [];
    let error = null;
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (e) => (error = e));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
  });
}

/** Runs node.exe with `args`; the child is killed when the test ends. */
export function spawnNode(t, args, options = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot, ...options });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return Object.assign(child, { output: () => out });
}

export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
}

/** Waits until `child` prints a line matching `pattern`; resolves with it. */
export function waitForLine(child, pattern, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got: ${buffer}`)), timeoutMs);
    const onData = (d) => {
      buffer += d.toString();
      const line = buffer.split(/\r?\n/).find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(line);
      }
    };
    child.stdout.on('data', onData);
  });
}

/** Polls `fn` until it returns true, or throws after `timeoutMs`. */
export async function waitFor(fn, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves with the rejection of `promise` (fails if it resolves). */
export async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

export const hang = () => new Promise(() => {});

/** A handler that answers `command` with 'pong' and anything else with 'other'. */
export function testAppHandlerOr(command) {
  return (request) => (request.toString() === command ? 'pong' : 'other');
}

/** A one-shot signal: `fire()` resolves `fired`. */
export function latch() {
  let fire;
  const fired = new Promise((resolve) => (fire = resolve));
  return { fire, fired };
}
