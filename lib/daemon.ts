// The daemon's life cycle seen from its clients: start it on demand
// (ensureDaemon, and the autoStart client option built on it), and from
// the daemon itself: take over from a running instance (the `replace`
// server option). See docs/design.md ("Daemon life cycle").
//
// Race safety needs no lock of its own: any number of callers may spawn a
// daemon at the same moment; the server's start sequence (lock file, then
// the live-server probe) lets exactly one of them listen and makes the
// others fail with EADDRINUSE and exit. Every caller waits for the path to
// listen, whoever ends up serving it.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

// client.js imports this module too; sendCommand is only used at call time.
import { connect, sendCommand, type IpcConnection } from './client.js';
import { argError, codeError, type IpcError } from './errors.js';
import { native, type NativeActiveState } from './native.js';
import { checkInteger, checkPath, type ClientOptions } from './options.js';

export interface EnsureDaemonOptions {
  /** The program to start (e.g. `process.execPath`). */
  command: string;
  /** Its arguments (e.g. `['daemon.js', '--serve']`). */
  args?: readonly string[];
  /** Its working directory. Default: the caller's. */
  cwd?: string;
  /** Its environment. Default: the caller's. */
  env?: NodeJS.ProcessEnv;
  /** Where its stdout and stderr go (appended). Default: nowhere (`/dev/null`). */
  logFile?: string;
  /** How long to wait for the path to listen, in ms. Default 30000. */
  maxWaitMs?: number;
}

export type AutoStartOptions = EnsureDaemonOptions;

export interface EnsureDaemonResult {
  /** `'running'`: something already listened; `'started'`: it listens since we spawned a daemon. */
  state: 'running' | 'started';
  /** The process we spawned (only with `'started'`). It may have lost the race to another daemon and exited. */
  pid?: number;
}

/**
 * Why ensureDaemon failed, in `err.code`:
 * - `ERR_IPC_DAEMON_SPAWN_FAILED`: the command could not be started (`err.cause`).
 * - `ERR_IPC_DAEMON_EXITED`: it exited before the path listened (`err.exitCode`, `err.signal`).
 * - `ERR_IPC_DAEMON_TIMEOUT`: `maxWaitMs` ran out (the daemon is left running: it may still come up).
 * - `ERR_IPC_DAEMON_PATH`: the path can never listen (`invalid-path`, or not a socket: `other-error`).
 * With a `logFile`, `err.logTail` holds its last lines and the message ends with them.
 */
export interface DaemonStartError extends IpcError {
  pid?: number;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  logTail?: string;
}

const DEFAULT_MAX_WAIT_MS = 30000;
const POLL_INTERVAL_MS = 20;
const LOG_TAIL_BYTES = 4096;

interface CheckedDaemonOptions {
  command: string;
  args: string[];
  cwd: string | undefined;
  env: NodeJS.ProcessEnv | undefined;
  logFile: string | undefined;
  maxWaitMs: number;
}

function checkOptionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw argError(name, 'a non-empty string', value);
  return value;
}

/** Argument errors throw synchronously, as everywhere in the library. */
export function checkDaemonOptions(options: unknown, name = 'options'): CheckedDaemonOptions {
  if (typeof options !== 'object' || options === null) throw argError(name, 'an object', options);
  const o = options as EnsureDaemonOptions;
  const command = checkOptionalString(`${name}.command`, o.command);
  if (command === undefined) throw argError(`${name}.command`, 'a non-empty string', o.command);
  if (o.args !== undefined && (!Array.isArray(o.args) || !o.args.every((a) => typeof a === 'string'))) {
    throw argError(`${name}.args`, 'an array of strings', o.args);
  }
  if (o.env !== undefined && (typeof o.env !== 'object' || o.env === null)) throw argError(`${name}.env`, 'an object', o.env);
  return {
    command,
    args: o.args === undefined ? [] : [...o.args],
    cwd: checkOptionalString(`${name}.cwd`, o.cwd),
    env: o.env,
    logFile: checkOptionalString(`${name}.logFile`, o.logFile),
    maxWaitMs: checkInteger(`${name}.maxWaitMs`, o.maxWaitMs, DEFAULT_MAX_WAIT_MS, 0, 0x7fffffff),
  };
}

/** The last lines of the log file, or '' (a missing or unreadable log is no error of its own). */
function readLogTail(logFile: string | undefined): string {
  if (logFile === undefined) return '';
  try {
    const fd = fs.openSync(logFile, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, LOG_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, size - length);
      return buffer.toString('utf8').trimEnd();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

function startError(code: string, message: string, options: CheckedDaemonOptions, extra: Partial<DaemonStartError> = {}): DaemonStartError {
  const logTail = readLogTail(options.logFile);
  const full = logTail === '' ? message : `${message}; the end of ${options.logFile}:\n${logTail}`;
  const error = Object.assign(codeError(code, full), extra) as DaemonStartError;
  if (logTail !== '') error.logTail = logTail;
  return error;
}

/** Spawns the daemon in its own session, stdio to the log file (or nowhere), no console window. */
function spawnDetached(options: CheckedDaemonOptions): ChildProcess {
  // Loaded on first use: node:child_process costs every client's start-up
  // some 40 ms, and most never start a daemon.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const logFd = options.logFile === undefined ? null : fs.openSync(options.logFile, 'a');
  try {
    const output = logFd === null ? 'ignore' : logFd;
    return spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', output, output],
      windowsHide: true,
    });
  } finally {
    // The child has its own copy.
    if (logFd !== null) fs.closeSync(logFd);
  }
}

/** What became of the child while we waited; kept up to date by its events. */
interface ChildWatch {
  spawnError: Error | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  release(): void;
}

function watchChild(child: ChildProcess): ChildWatch {
  const watch: ChildWatch = {
    spawnError: null,
    exit: null,
    release() {
      // The daemon lives on by itself; never wait for it.
      child.removeAllListeners();
      child.on('error', () => {});
      child.unref();
    },
  };
  child.once('error', (error) => (watch.spawnError = error));
  child.once('exit', (code, signal) => (watch.exit = { code, signal }));
  return watch;
}

function neverListens(state: NativeActiveState): boolean {
  return state === 'invalid-path' || state === 'other-error';
}

/**
 * Makes sure a daemon listens at `path`: resolves at once with
 * `{ state: 'running' }` when one does; otherwise spawns `command` detached
 * (its own session, stdio to `logFile` or nowhere, no console window) and
 * resolves with `{ state: 'started', pid }` once the path listens. Safe to
 * call from many processes at once (see the top of this file).
 */
export function ensureDaemon(path: string, options: EnsureDaemonOptions): Promise<EnsureDaemonResult> {
  checkPath(path);
  return ensureChecked(path, checkDaemonOptions(options));
}

async function ensureChecked(path: string, checked: CheckedDaemonOptions): Promise<EnsureDaemonResult> {
  const state = await native.getActiveState(path);
  if (state === 'listening') return { state: 'running' };
  if (neverListens(state)) throw startError('ERR_IPC_DAEMON_PATH', `'${path}' cannot listen (${state})`, checked);

  let child: ChildProcess;
  try {
    child = spawnDetached(checked);
  } catch (cause) {
    throw Object.assign(startError('ERR_IPC_DAEMON_SPAWN_FAILED', `could not start ${checked.command}`, checked), { cause });
  }
  const watch = watchChild(child);
  try {
    return await waitUntilListening(path, checked, child, watch);
  } finally {
    watch.release();
  }
}

async function waitUntilListening(path: string, options: CheckedDaemonOptions, child: ChildProcess, watch: ChildWatch): Promise<EnsureDaemonResult> {
  const pid = child.pid;
  const deadline = Date.now() + options.maxWaitMs;
  for (;;) {
    // Lets the child's 'error' and 'exit' events run.
    await sleep(0);
    if (watch.spawnError !== null) {
      throw Object.assign(startError('ERR_IPC_DAEMON_SPAWN_FAILED', `could not start ${options.command}: ${watch.spawnError.message}`, options), {
        cause: watch.spawnError,
      });
    }
    const exited = watch.exit;
    const state = await native.getActiveState(path);
    // Our child may have exited because another caller's daemon won the
    // race: the path listens, which is all the caller asked for.
    if (state === 'listening') return exited === null ? { state: 'started', pid } : { state: 'running' };
    if (neverListens(state)) throw startError('ERR_IPC_DAEMON_PATH', `'${path}' cannot listen (${state})`, options, { pid });
    if (exited !== null) {
      const how = exited.signal !== null ? `signal ${exited.signal}` : `code ${exited.code}`;
      throw startError('ERR_IPC_DAEMON_EXITED', `the daemon exited (${how}) before '${path}' listened`, options, {
        pid,
        exitCode: exited.code,
        signal: exited.signal,
      });
    }
    if (Date.now() >= deadline) {
      throw startError('ERR_IPC_DAEMON_TIMEOUT', `'${path}' did not listen within ${options.maxWaitMs} ms`, options, { pid });
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

// ---------------------------------------------------------------------------
// autoStart: the client options hook

/** A connect that found nobody there: the cases autoStart starts a daemon for. */
export function isNobodyListening(error: unknown): boolean {
  const state = (error as { state?: unknown } | null)?.state;
  return state === 'not-listening' || state === 'path-not-found';
}

/** Splits `autoStart` off the client options (checked synchronously). */
export function takeAutoStart<T extends ClientOptions>(options: T): { autoStart: EnsureDaemonOptions; rest: Omit<T, 'autoStart'> } {
  const { autoStart, ...rest } = options;
  checkDaemonOptions(autoStart, 'options.autoStart');
  return { autoStart: autoStart as EnsureDaemonOptions, rest };
}

/**
 * sendCommand with `autoStart`: try once; when nobody listens, start the
 * daemon and try again (once) now that it listens.
 */
export function sendWithAutoStart(
  send: (path: string, request: string | Uint8Array, options: ClientOptions) => Promise<Buffer>,
  path: string,
  request: string | Uint8Array,
  options: ClientOptions,
): Promise<Buffer> {
  const { autoStart, rest } = takeAutoStart(options);
  return sendOrStart(send, path, request, checkDaemonOptions(autoStart), rest);
}

async function sendOrStart(
  send: (path: string, request: string | Uint8Array, options: ClientOptions) => Promise<Buffer>,
  path: string,
  request: string | Uint8Array,
  autoStart: CheckedDaemonOptions,
  rest: ClientOptions,
): Promise<Buffer> {
  try {
    return await send(path, request, rest);
  } catch (error) {
    if (!isNobodyListening(error)) throw error;
  }
  await ensureChecked(path, autoStart);
  return send(path, request, rest);
}

/**
 * streamCommand with `autoStart`: as sendWithAutoStart, retried only when
 * the first attempt failed before any chunk arrived.
 */
export async function* streamWithAutoStart(
  stream: (path: string, request: string | Uint8Array, options: ClientOptions) => AsyncIterableIterator<Buffer>,
  path: string,
  request: string | Uint8Array,
  autoStart: EnsureDaemonOptions,
  rest: ClientOptions,
): AsyncGenerator<Buffer, void, undefined> {
  let received = false;
  try {
    for await (const chunk of stream(path, request, rest)) {
      received = true;
      yield chunk;
    }
    return;
  } catch (error) {
    if (received || !isNobodyListening(error)) throw error;
  }
  await ensureDaemon(path, autoStart);
  yield* stream(path, request, rest);
}

// ---------------------------------------------------------------------------
// replace: take the path over from a running server

export interface CheckedReplace {
  request: string | Uint8Array;
  timeoutMs: number;
}

const DEFAULT_REPLACE_TIMEOUT_MS = 10000;

/** The `replace` server option, checked synchronously; null when off. */
export function checkReplaceOption(value: unknown, listenFd: unknown): CheckedReplace | null {
  if (value === undefined || value === false) return null;
  if (listenFd !== undefined) {
    throw argError('options.replace', 'unset with options.listenFd (an inherited socket has no path to take over)', value, 'ERR_INVALID_ARG_VALUE');
  }
  if (value === true) return { request: 'quit', timeoutMs: DEFAULT_REPLACE_TIMEOUT_MS };
  if (typeof value !== 'object' || value === null) throw argError('options.replace', 'a boolean or an object', value);
  const o = value as { request?: unknown; timeoutMs?: unknown };
  if (o.request !== undefined && typeof o.request !== 'string' && !(o.request instanceof Uint8Array)) {
    throw argError('options.replace.request', 'a string or Uint8Array', o.request);
  }
  return {
    request: (o.request as string | Uint8Array | undefined) ?? 'quit',
    timeoutMs: checkInteger('options.replace.timeoutMs', o.timeoutMs, DEFAULT_REPLACE_TIMEOUT_MS, 0, 0x7fffffff),
  };
}

/**
 * Starts a server in place of the one running at `path` (the `replace`
 * option). POSIX: connect to the running server first, then start ours
 * (bound under a temporary name and renamed over the path: the path never
 * goes missing, and new clients reach us from then on), then send the
 * old server its quit request over the connection made before. It stops
 * and, the file no longer being its own, leaves it to us; a server that
 * ignores the request finds its path taken within a second or two and
 * stops too (close reason 'stolen'). Windows: a pipe name cannot be taken
 * over; ask the old server to stop, wait for the name, then start.
 */
export async function replaceRunningServer(path: string, replace: CheckedReplace, start: () => Promise<void>): Promise<void> {
  if (process.platform === 'win32') {
    await stopRunningServer(path, replace);
    return start();
  }
  let old: IpcConnection | null = null;
  if ((await native.getActiveState(path)) === 'listening') {
    old = await connect(path, { connectTimeoutMs: replace.timeoutMs, timeoutMs: replace.timeoutMs }).catch(() => null);
  }
  try {
    await start();
  } catch (error) {
    old?.close();
    throw error;
  }
  // Its answer does not matter (it may stop before answering).
  await old?.send(replace.request).catch(() => undefined);
}

/**
 * When a live server holds `path`, asks it to stop (sends the replace
 * request; its answer does not matter) and waits until the path no longer
 * listens. Rejects with EADDRINUSE if it still listens after timeoutMs.
 */
async function stopRunningServer(path: string, replace: CheckedReplace): Promise<void> {
  if ((await native.getActiveState(path)) !== 'listening') return;
  const deadline = Date.now() + replace.timeoutMs;
  try {
    await sendCommand(path, replace.request, { connectTimeoutMs: replace.timeoutMs, timeoutMs: replace.timeoutMs });
  } catch {
    // It may stop before answering, or have stopped already.
  }
  while ((await native.getActiveState(path)) === 'listening') {
    if (Date.now() >= deadline) {
      const error = codeError('EADDRINUSE', `the server at '${path}' did not stop within ${replace.timeoutMs} ms`);
      error.syscall = 'listen';
      error.address = path;
      throw error;
    }
    await sleep(POLL_INTERVAL_MS);
  }
}
