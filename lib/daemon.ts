// Starting a daemon on demand: ensureDaemon (the autoStart client option,
// lib/auto-start.ts, is built on it; the `replace` server option lives in
// lib/replace.ts). See docs/design.md#daemon-life-cycle.
//
// One start: the caller that finds the path dead takes the start lock
// (lib/start-lock.ts) before it spawns; the others wait for the path to
// listen (or for the lock to free up, or to go stale). Where no lock can
// be made, callers spawn freely and the server's own start sequence (lock
// file, then the live-server probe) still lets exactly one daemon listen.
// Every wait is bounded by maxWaitMs and by the caller's deadline and
// signal (docs/daemon.md).
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

import { abortError, argError, codeError, exchangeTimeoutError, type IpcError } from './errors.js';
import { native, type NativeActiveState } from './native.js';
import { checkInteger, checkOptionNames, checkPath, checkSignal, ENSURE_DAEMON_OPTION_NAMES, type EnsureDaemonOptions } from './options.js';
import { openOwnFileForAppend, openOwnFileForReading } from './safe-files.js';
import { processAlive, tryStartLock, type StartLock } from './start-lock.js';
import { runningVersion } from './version-file.js';

export type { AutoStartOptions, EnsureDaemonOptions } from './options.js';

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
 * - `ERR_IPC_UNSAFE_FILE`: `logFile` is not a regular file of this user (a symlink, a FIFO, another user's file); nothing was started.
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
const SETTLE_POLL_MS = 100;
const LOG_TAIL_BYTES = 4096;

export interface CheckedDaemonOptions {
  command: string;
  args: string[];
  cwd: string | undefined;
  env: NodeJS.ProcessEnv | undefined;
  logFile: string | undefined;
  maxWaitMs: number;
  version: string | undefined;
}

function checkOptionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw argError(name, 'a non-empty string', value);
  return value;
}

/** Argument errors throw synchronously, as everywhere in the library. */
export function checkDaemonOptions(options: unknown, name = 'options', known: Readonly<Record<string, true>> = ENSURE_DAEMON_OPTION_NAMES): CheckedDaemonOptions {
  if (typeof options !== 'object' || options === null) throw argError(name, 'an object', options);
  checkOptionNames(name, options, known);
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
    version: checkOptionalString(`${name}.version`, o.version),
  };
}

/** The last lines of the log file, or '' (a missing or unreadable log is no error of its own). */
function readLogTail(logFile: string | undefined): string {
  if (logFile === undefined) return '';
  try {
    const fd = openOwnFileForReading(logFile);
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

/** A start that failed before the child ran: the cause leads the message. */
function spawnFailed(cause: unknown, options: CheckedDaemonOptions): DaemonStartError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return Object.assign(startError('ERR_IPC_DAEMON_SPAWN_FAILED', `${reason} (could not start ${options.command})`, options), { cause });
}

/**
 * Opens the log for appending (a regular file of ours, created 0600:
 * lib/safe-files.ts); its failure names the log, not only the errno.
 */
function openLog(logFile: string): number {
  try {
    return openOwnFileForAppend(logFile);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ERR_IPC_UNSAFE_FILE') throw e; // not ours to write: reported as such
    throw Object.assign(new Error(`cannot open the daemon's logFile '${logFile}': ${e.code ?? e.message}`), { code: e.code, cause: e });
  }
}

/** Spawns the daemon in its own session, stdio to the log file (or nowhere), no console window. */
function spawnDetached(options: CheckedDaemonOptions): ChildProcess {
  // Loaded on first use: node:child_process costs every client's start-up
  // some 40 ms, and most never start a daemon.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const logFd = options.logFile === undefined ? null : openLog(options.logFile);
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
 * The caller's limits on the whole call: its signal, and the moment its
 * `timeoutMs` runs out (`Date.now()` scale). Either ends every wait of the
 * start at once; the daemon is left to come up (the next caller may use it).
 */
export interface CallBounds {
  signal?: AbortSignal;
  deadline?: number;
  timeoutMs?: number;
}

/** A wait for the daemon: the caller's bounds and maxWaitMs, checked together. */
class StartWait {
  private readonly until: number;

  constructor(
    private readonly path: string,
    private readonly options: CheckedDaemonOptions,
    private readonly bounds: CallBounds,
  ) {
    this.until = options.maxWaitMs === 0 ? Infinity : Date.now() + options.maxWaitMs; // 0: no limit
  }

  /** Throws when the caller's signal aborted or its deadline passed. */
  checkCaller(pid: number | undefined): void {
    const { signal, deadline, timeoutMs } = this.bounds;
    if (signal?.aborted) throw Object.assign(abortError(signal), pid === undefined ? {} : { pid });
    if (deadline !== undefined && Date.now() >= deadline) {
      const error = exchangeTimeoutError(timeoutMs, `before '${this.path}' listened (the daemon is left to start)`);
      throw Object.assign(error, pid === undefined ? {} : { pid });
    }
  }

  /** Throws when the caller's signal aborted or one of the deadlines passed. */
  check(pid: number | undefined): void {
    this.checkCaller(pid);
    if (Date.now() >= this.until) {
      throw startError('ERR_IPC_DAEMON_TIMEOUT', `'${this.path}' did not listen within ${this.options.maxWaitMs} ms`, this.options, { pid });
    }
  }

  /** Sleeps one poll interval, woken at once by the signal or a deadline. */
  pause(): Promise<void> {
    const { signal, deadline } = this.bounds;
    let ms = Math.min(POLL_INTERVAL_MS, this.until - Date.now());
    if (deadline !== undefined) ms = Math.min(ms, deadline - Date.now());
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * Makes sure a daemon listens at `path`: resolves at once with
 * `{ state: 'running' }` when one does; otherwise spawns `command` detached
 * (its own session, stdio to `logFile` or nowhere, no console window) and
 * resolves with `{ state: 'started', pid }` once the path listens. Safe to
 * call from many processes at once: one of them spawns (see the top of
 * this file).
 */
export function ensureDaemon(path: string, options: EnsureDaemonOptions): Promise<EnsureDaemonResult> {
  checkPath(path);
  const checked = checkDaemonOptions(options);
  const signal = checkSignal(options.signal);
  return ensureChecked(path, checked, { signal });
}

/**
 * The path's state, and whether it is served as asked: it listens, and
 * with `version`, the daemon there announces that version
 * (lib/version-file.ts). A daemon of another version counts as none.
 */
async function probe(path: string, checked: CheckedDaemonOptions): Promise<{ state: NativeActiveState; served: boolean }> {
  const state = await native.getActiveState(path);
  const served = state === 'listening' && (checked.version === undefined || runningVersion(path) === checked.version);
  return { state, served };
}

/** ensureDaemon with its options checked, within the caller's bounds. */
export async function ensureChecked(path: string, checked: CheckedDaemonOptions, bounds: CallBounds = {}): Promise<EnsureDaemonResult> {
  const wait = new StartWait(path, checked, bounds);
  // Only the caller's own bounds here: maxWaitMs 0 still starts the daemon
  // (and leaves it starting), as Git's start-daemon --max-wait=0 does.
  wait.checkCaller(undefined);
  let { state, served } = await probe(path, checked);
  for (;;) {
    if (served) return { state: 'running' };
    if (neverListens(state)) throw startError('ERR_IPC_DAEMON_PATH', `'${path}' cannot listen (${state})`, checked);
    const lock = tryStartLock(path);
    if (lock !== 'held') return startHoldingLock(path, checked, wait, lock);
    // Another caller is starting it: wait for the path (or for its lock
    // to be released or go stale).
    await wait.pause();
    wait.check(undefined);
    ({ state, served } = await probe(path, checked));
  }
}

async function startHoldingLock(path: string, checked: CheckedDaemonOptions, wait: StartWait, lock: StartLock | null): Promise<EnsureDaemonResult> {
  let keepLock = false;
  try {
    // The previous holder may have started it just now.
    const { state, served } = await probe(path, checked);
    if (served) return { state: 'running' };
    if (neverListens(state)) throw startError('ERR_IPC_DAEMON_PATH', `'${path}' cannot listen (${state})`, checked);
    let child: ChildProcess;
    try {
      child = spawnDetached(checked);
    } catch (cause) {
      if ((cause as IpcError).code === 'ERR_IPC_UNSAFE_FILE') throw cause; // the log file: not ours to write
      throw spawnFailed(cause, checked);
    }
    if (child.pid !== undefined) lock?.handOver(child.pid);
    const watch = watchChild(child);
    try {
      return await waitUntilListening(path, checked, child, watch, wait);
    } catch (error) {
      // The caller gave up, not the daemon: it keeps the lock while it starts.
      const code = (error as IpcError).code;
      if (lock !== null && child.pid !== undefined && (code === 'ABORT_ERR' || code === 'ERR_IPC_TIMEOUT' || code === 'ERR_IPC_DAEMON_TIMEOUT')) {
        keepLock = true;
        releaseOnceSettled(path, lock, child.pid);
      }
      throw error;
    } finally {
      watch.release();
    }
  } finally {
    if (!keepLock) lock?.release();
  }
}

/**
 * Releases the lock once the daemon the caller gave up on listens or
 * exits, without keeping the process alive for it (if the process ends
 * first, the lock names the daemon and goes stale when it exits).
 */
function releaseOnceSettled(path: string, lock: StartLock, pid: number): void {
  const timer = setInterval(() => {
    void native.getActiveState(path).then((state) => {
      if (state === 'listening' || !processAlive(pid)) {
        clearInterval(timer);
        lock.release();
      }
    });
  }, SETTLE_POLL_MS);
  timer.unref();
}

async function waitUntilListening(
  path: string,
  options: CheckedDaemonOptions,
  child: ChildProcess,
  watch: ChildWatch,
  wait: StartWait,
): Promise<EnsureDaemonResult> {
  const pid = child.pid;
  for (;;) {
    // Lets the child's 'error' and 'exit' events run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (watch.spawnError !== null) throw spawnFailed(watch.spawnError, options);
    const exited = watch.exit;
    const { state, served } = await probe(path, options);
    // Our child may have exited because another daemon won the race (one
    // started without us): the path is served, which is all the caller asked for.
    if (served) return exited === null ? { state: 'started', pid } : { state: 'running' };
    if (neverListens(state)) throw startError('ERR_IPC_DAEMON_PATH', `'${path}' cannot listen (${state})`, options, { pid });
    if (exited !== null) {
      const how = exited.signal !== null ? `signal ${exited.signal}` : `code ${exited.code}`;
      throw startError('ERR_IPC_DAEMON_EXITED', `the daemon exited (${how}) before '${path}' listened`, options, {
        pid,
        exitCode: exited.code,
        signal: exited.signal,
      });
    }
    wait.check(pid);
    await wait.pause();
    wait.check(pid);
  }
}
