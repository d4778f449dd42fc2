// Starting a daemon on demand: ensureDaemon (the autoStart client option,
// lib/auto-start.ts, is built on it; the `replace` server option lives in
// lib/replace.ts). See docs/design.md#daemon-life-cycle.
//
// Race safety needs no lock of its own: any number of callers may spawn a
// daemon at the same moment; the server's start sequence (lock file, then
// the live-server probe) lets exactly one of them listen and makes the
// others fail with EADDRINUSE and exit. Every caller waits for the path to
// listen, whoever ends up serving it.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { argError, codeError, type IpcError } from './errors.js';
import { native, type NativeActiveState } from './native.js';
import { checkInteger, checkOptionNames, checkPath, ENSURE_DAEMON_OPTION_NAMES, type EnsureDaemonOptions } from './options.js';

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

export interface CheckedDaemonOptions {
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
  checkOptionNames(name, options, ENSURE_DAEMON_OPTION_NAMES);
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

/** ensureDaemon with options already checked. */
export async function ensureChecked(path: string, checked: CheckedDaemonOptions): Promise<EnsureDaemonResult> {
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
