// Argument checks and defaults. Everything here throws synchronously,
// before anything reaches the addon.
import { argError, codeError, type IpcError } from './errors.js';
import type { NativeClientOptions, NativeServerOptions } from './native.js';

export interface ClientOptions {
  /** Retry every 50 ms while the server refuses connections (busy or starting). Default true. */
  waitIfBusy?: boolean;
  /** Retry every 50 ms while the path does not exist yet. Default false. */
  waitIfNotFound?: boolean;
  /** How long the connect loop may retry, in ms. Default: Git's values, 1000 on POSIX, 30000 on Windows. */
  connectTimeoutMs?: number;
  /** Limit for the whole exchange (connect, send, receive), in ms. Default: none. */
  timeoutMs?: number;
  /** Cancels the exchange; the promise rejects with an `AbortError`. */
  signal?: AbortSignal;
  /**
   * Whom the server must run as, checked on the connected socket or pipe
   * before the request is sent: `'self'` (this process's user) or, on
   * POSIX, a uid. Otherwise `ERR_IPC_SERVER_IDENTITY`. Default: no check.
   */
  serverUid?: 'self' | number;
  /** Most response payload bytes accepted; more fails with `ERR_IPC_RESPONSE_TOO_LARGE`. Default: no limit. */
  maxResponseBytes?: number;
  /**
   * Starts the daemon when the connect finds nobody there (`not-listening`
   * or `path-not-found`), then sends once more (see `ensureDaemon`).
   * Not for `sendCommandSync` or `connect`.
   */
  autoStart?: AutoStartOptions;
}

/** How to start a daemon (the `autoStart` client option): see `ensureDaemon`. */
export interface AutoStartOptions {
  /** The program to start (e.g. `process.execPath`). */
  command: string;
  /** Its arguments (e.g. `['daemon.js', '--serve']`). */
  args?: readonly string[];
  /** Its working directory. Default: the caller's. */
  cwd?: string;
  /** Its environment. Default: the caller's. */
  env?: NodeJS.ProcessEnv;
  /** Where its stdout and stderr go (appended; created 0600; must be a regular file of this user, else ERR_IPC_UNSAFE_FILE). Default: nowhere (`/dev/null`). */
  logFile?: string;
  /** How long to wait for the path to listen, in ms. Default 30000. */
  maxWaitMs?: number;
  /**
   * The daemon version this caller needs: a daemon that listens but
   * announces another version (or none: the `version` server option) is
   * started anew, and the started daemon (whose `version` matches) replaces
   * it. The call waits until the path listens with this version.
   */
  version?: string;
}

/** `ensureDaemon`'s options: how to start the daemon, and its own signal. */
export interface EnsureDaemonOptions extends AutoStartOptions {
  /** Cancels the wait (the daemon is left to start). With `autoStart` the call's own `signal` and `timeoutMs` do this. */
  signal?: AbortSignal;
}

export type PipeAccess = 'user' | 'everyone' | { sddl: string };

export interface PeerInfo {
  /** Process id of the client, or null where the platform cannot tell. */
  pid: number | null;
  /** User id of the client (POSIX), or null. */
  uid: number | null;
  /** Group id of the client (POSIX), or null. */
  gid: number | null;
  /** Windows: the client's user SID. */
  sid?: string;
}

export interface ServerOptions {
  /**
   * Native serving threads. Each accepts connections, reads their requests,
   * enforces the limits and finishes the replies the JS thread could not
   * write at once, for the connections it accepted. The handler always runs
   * on the JS thread, which writes replies itself when the socket takes them
   * at once. Default 2. (Windows: pipe instances served in parallel.)
   */
  threads?: number;
  /** Largest request accepted, in bytes; `Infinity` for no limit. Default 64 MiB. */
  maxRequestBytes?: number;
  /**
   * The bytes all requests still being read may hold together; a
   * read past it drops its connection (`clientError` `ERR_IPC_BUFFER_FULL`).
   * `Infinity` for no limit. Default 256 MiB, or `maxRequestBytes` if larger.
   */
  maxBufferedRequestBytes?: number;
  /** Time a connected client has to complete its request, in ms; 0 disables. Default 30000. */
  requestTimeoutMs?: number;
  /** Open plus queued connections; beyond it new ones are closed at once. Default 1024. */
  maxConnections?: number;
  /**
   * How long close(), a handler's QUIT or an idle stop lets running handlers
   * finish before dropping them, in ms. Default 30000.
   */
  closeTimeoutMs?: number;
  /**
   * Stop by itself (close reason `'idle'`) once no connection has been open
   * for this long, in ms; checked about once a second. The path is removed
   * first, then whatever was accepted is still served. 0 (default): never.
   */
  idleTimeoutMs?: number;
  /** POSIX: mode of the socket file (e.g. 0o600), set before the server listens. Default: from the umask. Refused on Windows (ERR_INVALID_ARG_VALUE): use `pipeAccess`. */
  socketMode?: number;
  /** Called before a connection's request is read; false (or a rejection) disconnects the peer. */
  allowPeer?: (peer: PeerInfo) => boolean | Promise<boolean>;
  /** Windows: who may open the pipe. Default 'user' (current user, SYSTEM, Administrators). Refused on POSIX (ERR_INVALID_ARG_VALUE): use `socketMode`. */
  pipeAccess?: PipeAccess;
  /**
   * POSIX: serve this inherited listening Unix socket (systemd socket
   * activation: see `systemdListenFd()`) instead of creating one at the
   * path: no lock, bind or unlink, and no stolen-path check (the socket
   * file is not ours). `undefined` creates the socket as usual. Refused on
   * Windows (ERR_INVALID_ARG_VALUE).
   */
  listenFd?: number;
  /**
   * Take the path over from a live server (upgrades): send it `request`
   * (default Git's `quit`), wait up to `timeoutMs` (default 10000) until it
   * stops listening, then start. `true` uses the defaults.
   */
  replace?: boolean | ReplaceOptions;
  /**
   * Close gracefully (within `closeTimeoutMs`, removing the socket file) on
   * SIGINT, SIGTERM and SIGHUP (`true`), or on the signals listed; then the
   * process ends by that signal, as without a handler, unless another
   * listener for it remains. A second signal drops what still runs.
   * Default false.
   */
  closeOnSignals?: boolean | readonly ('SIGINT' | 'SIGTERM' | 'SIGHUP')[];
  /**
   * The daemon's version, announced in `<path>.version` beside the socket
   * (never on the wire) for clients whose `autoStart.version` asks for one.
   * A live server at the path that announces another version, or none, is
   * replaced as with `replace: true`; one of the same version makes the
   * start fail with `EADDRINUSE`. Default: none.
   */
  version?: string;
}

export interface ReplaceOptions {
  /** What asks the running server to stop. Default `'quit'`. */
  request?: string | Uint8Array;
  /** How long to wait for the path to be free, in ms. Default 10000. */
  timeoutMs?: number;
}

/**
 * The names an options object may have: `Record<keyof Required<T>, true>`
 * makes TypeScript insist on every key of T and no other, so a new option
 * cannot be forgotten here.
 */
export type OptionNames<T> = Record<keyof Required<T>, true>;

/**
 * The one check of every options object: each key must be a known option,
 * else ERR_INVALID_ARG_VALUE naming the nearest known one. `for...in`
 * allocates nothing, so the common case costs a few property lookups.
 */
export function checkOptionNames(name: string, options: object, known: Readonly<Record<string, true>>): void {
  for (const key in options) {
    if (!Object.prototype.hasOwnProperty.call(known, key)) throw unknownOptionError(name, key, Object.keys(known));
  }
}

function unknownOptionError(name: string, key: string, known: string[]): IpcError {
  const nearest = nearestName(key, known);
  let hint: string;
  if (nearest !== undefined) hint = `did you mean "${nearest}"?`;
  else if (known.length === 0) hint = 'it takes no options';
  else hint = `the known options are ${known.map((k) => `"${k}"`).join(', ')}`;
  return codeError('ERR_INVALID_ARG_VALUE', `The "${name}" argument has an unknown option "${key}" (${hint})`, TypeError as ErrorConstructor);
}

/**
 * The known name closest to `key`: case-insensitive edit distance (to the
 * name with or without its `Ms`), a prefix counting as close. Undefined
 * when none is close enough to be a likely misspelling (then the caller
 * lists them all).
 */
export function nearestName(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const k = key.toLowerCase();
  for (const candidate of known) {
    const c = candidate.toLowerCase();
    // `timeout` for `timeoutMs`: the unit suffix is the likeliest omission.
    const bare = c.endsWith('ms') ? c.slice(0, -2) : c;
    const distance = c.startsWith(k) || k.startsWith(c) ? 0 : Math.min(editDistance(k, c), editDistance(k, bare));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(k.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

const NO_OPTIONS = Object.freeze({});

/** Checks that `options` is undefined or an object of known options; returns it (an empty one for undefined). */
export function checkOptions<T extends object>(name: string, options: T | undefined, known: Readonly<Record<string, true>>): T {
  if (options === undefined) return NO_OPTIONS as T;
  if (typeof options !== 'object' || options === null) throw argError(name, 'an object', options);
  checkOptionNames(name, options, known);
  return options;
}

export const CLIENT_OPTION_NAMES: OptionNames<ClientOptions> = {
  waitIfBusy: true,
  waitIfNotFound: true,
  connectTimeoutMs: true,
  timeoutMs: true,
  signal: true,
  serverUid: true,
  maxResponseBytes: true,
  autoStart: true,
};

/** What sendCommandSync takes: no signal, no autoStart. */
export type SyncClientOptions = Omit<ClientOptions, 'signal' | 'autoStart'>;
/** What connect takes: no autoStart. */
export type ConnectOptions = Omit<ClientOptions, 'autoStart'>;

const { signal: _signal, autoStart: _autoStart, ...SYNC_CLIENT_OPTION_NAMES } = CLIENT_OPTION_NAMES;
const CONNECT_OPTION_NAMES: OptionNames<ConnectOptions> = { ...SYNC_CLIENT_OPTION_NAMES, signal: true };

/** Which client call the options are for: each takes its own set. */
export const enum ClientCall {
  Async,
  Sync,
  Connect,
}

const CLIENT_CALL_OPTION_NAMES: readonly Readonly<Record<string, true>>[] = [CLIENT_OPTION_NAMES, SYNC_CLIENT_OPTION_NAMES, CONNECT_OPTION_NAMES];

export const SERVER_OPTION_NAMES: OptionNames<ServerOptions> = {
  threads: true,
  maxRequestBytes: true,
  maxBufferedRequestBytes: true,
  requestTimeoutMs: true,
  maxConnections: true,
  closeTimeoutMs: true,
  idleTimeoutMs: true,
  socketMode: true,
  allowPeer: true,
  pipeAccess: true,
  listenFd: true,
  replace: true,
  closeOnSignals: true,
  version: true,
};

export const AUTO_START_OPTION_NAMES: OptionNames<AutoStartOptions> = {
  command: true,
  args: true,
  cwd: true,
  env: true,
  logFile: true,
  maxWaitMs: true,
  version: true,
};

export const ENSURE_DAEMON_OPTION_NAMES: OptionNames<EnsureDaemonOptions> = { ...AUTO_START_OPTION_NAMES, signal: true };

const PIPE_ACCESS_OPTION_NAMES: OptionNames<Extract<PipeAccess, object>> = { sddl: true };

export const REPLACE_OPTION_NAMES: OptionNames<ReplaceOptions> = { request: true, timeoutMs: true };

/** Options of `IpcServer.close()`. */
export interface CloseOptions {
  /** How long running handlers may finish, in ms; 0: no limit. Default: the server's `closeTimeoutMs`. */
  timeoutMs?: number;
  /** Drop running handlers at once (their `ctx.signal` aborts) instead of letting them finish. Not with `timeoutMs`. */
  force?: boolean;
}

export const CLOSE_OPTION_NAMES: OptionNames<CloseOptions> = { timeoutMs: true, force: true };

/** The grace close() gives running handlers, in the addon's terms (0: drop at once). */
export function closeGraceMs(options: CloseOptions | undefined, closeTimeoutMs: number): number {
  const o = checkOptions('options', options, CLOSE_OPTION_NAMES);
  const force = checkBoolean('options.force', o.force, false);
  if (force && o.timeoutMs !== undefined) {
    throw argError('options.force', 'unset with options.timeoutMs (force drops running handlers at once)', force, 'ERR_INVALID_ARG_VALUE');
  }
  return force ? 0 : checkTimeLimit('options.timeoutMs', o.timeoutMs, closeTimeoutMs);
}

function checkBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw argError(name, 'of type boolean', value);
  return value;
}

export function checkInteger(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw argError(name, 'an integer', value);
  if (value < min || value > max) {
    throw argError(name, `an integer from ${min} to ${max}`, value, 'ERR_OUT_OF_RANGE');
  }
  return value;
}

export function checkPath(value: unknown): string {
  if (typeof value !== 'string') throw argError('path', 'of type string', value);
  if (value.length === 0) throw argError('path', 'a non-empty string', value, 'ERR_INVALID_ARG_VALUE');
  if (value.includes('\0')) throw argError('path', 'a string without NUL bytes', value, 'ERR_INVALID_ARG_VALUE');
  return value;
}

export function checkRequest(value: unknown): string | Uint8Array {
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  throw argError('request', 'a string, Buffer or Uint8Array', value);
}

export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof (value as AbortSignal).aborted !== 'boolean') {
    throw argError('options.signal', 'an AbortSignal', value);
  }
  return value as AbortSignal;
}

const MAX_TIMEOUT = 0x7fffffff;

/**
 * What the addon takes for "no limit" (native/core/clock.h's
 * kNoTimeLimitMs): there a 0 means "at once" (a stop's grace, a single
 * connect attempt), while the API's 0 is "no limit" for every time option
 * (docs/api.md#time-limits).
 */
export const NO_TIME_LIMIT = 0xffffffff;

/** A time option: 0 (no limit) becomes NO_TIME_LIMIT for the addon. */
export function checkTimeLimit(name: string, value: unknown, fallback: number): number {
  const ms = checkInteger(name, value, fallback, 0, MAX_TIMEOUT);
  return ms === 0 ? NO_TIME_LIMIT : ms;
}
// Git's client gives up connecting after 1 s on POSIX, but lets a busy pipe
// make it wait up to 30 s on Windows.
const DEFAULT_CONNECT_TIMEOUT_MS = process.platform === 'win32' ? 30000 : 1000;

export function normalizeClientOptions(options: ClientOptions | undefined, call: ClientCall): NativeClientOptions {
  options = checkOptions('options', options, CLIENT_CALL_OPTION_NAMES[call]);
  return {
    waitIfBusy: checkBoolean('options.waitIfBusy', options.waitIfBusy, true),
    waitIfNotFound: checkBoolean('options.waitIfNotFound', options.waitIfNotFound, false),
    connectTimeoutMs: checkTimeLimit('options.connectTimeoutMs', options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
    // The addon's "none" is undefined (no deadline at all).
    timeoutMs: options.timeoutMs === undefined ? undefined : checkInteger('options.timeoutMs', options.timeoutMs, 0, 0, MAX_TIMEOUT) || undefined,
    serverUid: checkServerUid(options.serverUid),
    maxResponseBytes:
      options.maxResponseBytes === undefined
        ? undefined
        : checkInteger('options.maxResponseBytes', options.maxResponseBytes, 0, 1, Number.MAX_SAFE_INTEGER),
  };
}

// No option is silently ignored: one that this platform cannot honour is
// refused (docs/windows.md#options-that-differ).
function refuseOn(platform: 'posix' | 'win32', name: string, value: unknown, why: string): void {
  if (value === undefined || (process.platform === 'win32') !== (platform === 'win32')) return;
  const where = platform === 'win32' ? 'Windows' : 'POSIX';
  throw argError(name, `undefined on ${where} (${why})`, value, 'ERR_INVALID_ARG_VALUE');
}

// A uid is POSIX's: a Windows server is a user SID, which only 'self' names.
function checkServerUid(value: unknown): 'self' | number | undefined {
  if (value === undefined || value === 'self') return value;
  if (process.platform === 'win32') {
    throw argError('options.serverUid', "'self' on Windows (a pipe server's user is a SID, not a uid)", value, 'ERR_INVALID_ARG_VALUE');
  }
  if (typeof value !== 'number') throw argError('options.serverUid', "'self' or a uid", value);
  return checkInteger('options.serverUid', value, 0, 0, 0xfffffffe);
}

function checkListenFd(value: unknown): number {
  if (value === undefined) return -1;
  refuseOn('win32', 'options.listenFd', value, 'named pipes cannot be inherited listeners');
  return checkInteger('options.listenFd', value, -1, 0, 0x7fffffff);
}

export interface NormalizedServerOptions {
  native: NativeServerOptions;
  closeTimeoutMs: number;
  allowPeer: ((peer: PeerInfo) => boolean | Promise<boolean>) | undefined;
}

const DEFAULT_MAX_BUFFERED_REQUEST_BYTES = 256 * 1024 * 1024;

/** A byte count option: a non-negative integer or Infinity (as Number.MAX_SAFE_INTEGER: no limit). */
function checkByteCount(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value === Infinity || (Number.isInteger(value) && value >= 0))) {
    throw argError(name, 'a non-negative integer or Infinity', value);
  }
  return value === Infinity ? Number.MAX_SAFE_INTEGER : value;
}

export function normalizeServerOptions(path: string, options: ServerOptions | undefined): NormalizedServerOptions {
  options = checkOptions('options', options, SERVER_OPTION_NAMES);
  const maxRequestBytes = checkByteCount('options.maxRequestBytes', options.maxRequestBytes, 64 * 1024 * 1024);
  // docs/security.md#memory: what a 2-core, 4 GB machine survives
  // whatever its clients send; never below one request at the limit.
  const maxBufferedRequestBytes = checkByteCount(
    'options.maxBufferedRequestBytes',
    options.maxBufferedRequestBytes,
    Math.max(DEFAULT_MAX_BUFFERED_REQUEST_BYTES, maxRequestBytes),
  );
  let socketMode = -1;
  if (options.socketMode !== undefined) socketMode = checkInteger('options.socketMode', options.socketMode, -1, 0, 0o7777);
  refuseOn('win32', 'options.socketMode', options.socketMode, 'a named pipe has no file mode: use options.pipeAccess');
  if (options.allowPeer !== undefined && typeof options.allowPeer !== 'function') {
    throw argError('options.allowPeer', 'a function', options.allowPeer);
  }
  let pipeAccess: NativeServerOptions['pipeAccess'] = 'user';
  let sddl = '';
  const access = options.pipeAccess;
  if (access === 'everyone' || access === 'user') {
    pipeAccess = access;
  } else if (typeof access === 'object' && access !== null && typeof access.sddl === 'string' && access.sddl) {
    checkOptionNames('options.pipeAccess', access, PIPE_ACCESS_OPTION_NAMES);
    pipeAccess = 'sddl';
    sddl = access.sddl;
  } else if (access !== undefined) {
    throw argError('options.pipeAccess', "'user', 'everyone' or { sddl: string }", access, 'ERR_INVALID_ARG_VALUE');
  }
  // A valid value (a malformed one has its own error first) is still refused off Windows.
  refuseOn('posix', 'options.pipeAccess', access, 'a Unix socket has no DACL: use options.socketMode');
  const closeTimeoutMs = checkInteger('options.closeTimeoutMs', options.closeTimeoutMs, 30000, 0, MAX_TIMEOUT);
  const listenFd = checkListenFd(options.listenFd);
  return {
    native: {
      path,
      listenFd,
      takeOver: options.replace !== undefined && options.replace !== false,
      threads: checkInteger('options.threads', options.threads, 2, 1, 1024),
      maxRequestBytes,
      maxBufferedRequestBytes,
      requestTimeoutMs: checkInteger('options.requestTimeoutMs', options.requestTimeoutMs, 30000, 0, MAX_TIMEOUT),
      maxConnections: checkInteger('options.maxConnections', options.maxConnections, 1024, 1, 1 << 20),
      quitGraceMs: closeTimeoutMs === 0 ? NO_TIME_LIMIT : closeTimeoutMs,
      idleTimeoutMs: checkInteger('options.idleTimeoutMs', options.idleTimeoutMs, 0, 0, MAX_TIMEOUT),
      socketMode,
      checkPeer: options.allowPeer !== undefined,
      pipeAccess,
      sddl,
    },
    closeTimeoutMs,
    allowPeer: options.allowPeer,
  };
}
