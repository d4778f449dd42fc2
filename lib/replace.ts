// The `replace` server option: take the path over from a running server
// (upgrades). See docs/design.md#replace.
import { setTimeout as sleep } from 'node:timers/promises';

import { connect, sendCommand, type IpcConnection } from './client.js';
import { argError, codeError } from './errors.js';
import { native } from './native.js';
import { checkInteger, checkOptionNames, REPLACE_OPTION_NAMES } from './options.js';
import { runningVersion } from './version-file.js';

const POLL_INTERVAL_MS = 20;

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
  checkOptionNames('options.replace', value, REPLACE_OPTION_NAMES);
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
  const deadline = replace.timeoutMs === 0 ? Infinity : Date.now() + replace.timeoutMs; // 0: no limit
  try {
    await sendCommand(path, replace.request, { connectTimeoutMs: replace.timeoutMs, timeoutMs: replace.timeoutMs });
  } catch {
    // It may stop before answering, or have stopped already.
  }
  while ((await native.getActiveState(path)) === 'listening') {
    if (Date.now() >= deadline) {
      // The addon's EADDRINUSE wording, with why as its detail.
      const error = codeError('EADDRINUSE', `listen: address already in use: the server at '${path}' did not stop within ${replace.timeoutMs} ms`);
      error.syscall = 'listen';
      error.address = path;
      throw error;
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** The `version` server option, checked synchronously. */
export function checkVersionOption(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw argError('options.version', 'a non-empty string', value);
  return value;
}

/**
 * The `version` server option's start: a live server at `path` that
 * announces another version, or none (lib/version-file.ts), is replaced
 * as with `replace: true`; otherwise the start is the usual one, and a
 * live server of the same version makes it fail with EADDRINUSE (another
 * caller's daemon of this version won).
 */
export async function startVersioned(path: string, version: string, start: (takeOver: boolean) => Promise<void>): Promise<void> {
  if ((await native.getActiveState(path)) === 'listening' && runningVersion(path) !== version) {
    return replaceRunningServer(path, { request: 'quit', timeoutMs: DEFAULT_REPLACE_TIMEOUT_MS }, () => start(true));
  }
  return start(false);
}
