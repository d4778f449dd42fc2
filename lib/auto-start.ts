// The autoStart client option: when the connect finds nobody there, start
// the daemon (lib/daemon.ts) and send once more, all within the call's
// own signal and timeoutMs (docs/daemon.md). The send functions come from
// lib/client.ts as arguments, so this module does not import it; they run
// untraced, and the call is traced here once, start included.
import { checkDaemonOptions, ensureChecked, type CallBounds, type CheckedDaemonOptions, type EnsureDaemonResult } from './daemon.js';
import { clientRequestStarted, clientResponseEnded, type ClientTrace } from './diagnostics.js';
import { abortError, exchangeTimeoutError, type IpcError } from './errors.js';
import { AUTO_START_OPTION_NAMES, checkSignal, ClientCall, normalizeClientOptions, type ClientOptions } from './options.js';
import { runningVersion } from './version-file.js';

/** One untraced attempt of lib/client.ts. */
export type SendOnce = (path: string, request: string | Uint8Array, options: ClientOptions) => Promise<Buffer>;
export type StreamOnce = (path: string, request: string | Uint8Array, options: ClientOptions) => AsyncIterableIterator<Buffer>;

/** A connect that found nobody there: the cases autoStart starts a daemon for. */
export function isNobodyListening(error: unknown): boolean {
  const state = (error as { state?: unknown } | null)?.state;
  return state === 'not-listening' || state === 'path-not-found';
}

// On Linux a Unix socket that refuses a connection has nobody listening (a
// live server with a full backlog answers EAGAIN, which the connect loop
// still waits out): with autoStart, the first attempt does not wait for a
// refusing socket for connectTimeoutMs, it starts the daemon at once.
// Elsewhere ECONNREFUSED (macOS) or a busy pipe (Windows) may be a live
// server, and Git's retry rules stand.
const REFUSED_MEANS_NOBODY = process.platform === 'linux';

interface AutoStartCall {
  autoStart: CheckedDaemonOptions;
  rest: ClientOptions;
  bounds: CallBounds;
  trace: ClientTrace | null;
}

/** Splits `autoStart` off the client options and checks everything synchronously. */
function prepare(path: string, request: string | Uint8Array, options: ClientOptions, kind: 'send' | 'stream'): AutoStartCall {
  const { autoStart, ...rest } = options;
  const checked = checkDaemonOptions(autoStart, 'options.autoStart', AUTO_START_OPTION_NAMES);
  const timeoutMs = normalizeClientOptions(rest, ClientCall.Async).timeoutMs;
  const bounds: CallBounds = { signal: checkSignal(rest.signal), timeoutMs };
  if (timeoutMs !== undefined) bounds.deadline = Date.now() + timeoutMs;
  return { autoStart: checked, rest, bounds, trace: clientRequestStarted(path, request, kind) };
}

function firstAttempt(rest: ClientOptions): ClientOptions {
  return REFUSED_MEANS_NOBODY ? { ...rest, waitIfBusy: false } : rest;
}

/** The caller's options for the attempt after the start: what is left of timeoutMs. */
function secondAttempt(call: AutoStartCall): ClientOptions {
  const { signal, deadline, timeoutMs } = call.bounds;
  if (signal?.aborted) throw abortError(signal);
  if (deadline === undefined) return call.rest;
  const left = deadline - Date.now();
  if (left < 1) throw exchangeTimeoutError(timeoutMs);
  return { ...call.rest, timeoutMs: left };
}

async function start(path: string, call: AutoStartCall): Promise<EnsureDaemonResult> {
  const started = performance.now();
  try {
    const result = await ensureChecked(path, call.autoStart, call.bounds);
    if (call.trace !== null) call.trace.autoStart = { ...result, durationMs: performance.now() - started };
    return result;
  } catch (error) {
    if (call.trace !== null) call.trace.autoStart = { state: 'failed', durationMs: performance.now() - started };
    throw error;
  }
}

function ended(call: AutoStartCall, error: unknown, response?: Buffer): void {
  if (call.trace !== null) clientResponseEnded(call.trace, error === null ? null : (error as IpcError), response);
}

/** sendCommand with `autoStart`: try once; when nobody listens, start the daemon and send again. */
export function sendWithAutoStart(send: SendOnce, path: string, request: string | Uint8Array, options: ClientOptions): Promise<Buffer> {
  const call = prepare(path, request, options, 'send');
  return sendOrStart(send, path, request, call).then(
    (response) => {
      ended(call, null, response);
      return response;
    },
    (error: unknown) => {
      ended(call, error);
      throw error;
    },
  );
}

/**
 * With `autoStart.version`: whether the daemon at the path (if any)
 * announces another version, or none; then the call starts its own first
 * (which replaces the other one) instead of sending to it.
 */
function otherVersionThere(path: string, call: AutoStartCall): boolean {
  const wanted = call.autoStart.version;
  return wanted !== undefined && runningVersion(path) !== wanted;
}

async function sendOrStart(send: SendOnce, path: string, request: string | Uint8Array, call: AutoStartCall): Promise<Buffer> {
  if (!otherVersionThere(path, call)) {
    try {
      return await send(path, request, firstAttempt(call.rest));
    } catch (error) {
      if (!isNobodyListening(error)) throw error;
    }
  }
  await start(path, call);
  return send(path, request, secondAttempt(call));
}

/**
 * streamCommand with `autoStart`: as sendWithAutoStart, retried only when
 * the first attempt failed before any chunk arrived.
 */
export function streamWithAutoStart(stream: StreamOnce, path: string, request: string | Uint8Array, options: ClientOptions): AsyncGenerator<Buffer, void, undefined> {
  return streamOrStart(stream, path, request, prepare(path, request, options, 'stream'));
}

async function* streamOrStart(stream: StreamOnce, path: string, request: string | Uint8Array, call: AutoStartCall): AsyncGenerator<Buffer, void, undefined> {
  let error: unknown = null;
  try {
    let received = false;
    if (!otherVersionThere(path, call)) {
      try {
        for await (const chunk of stream(path, request, firstAttempt(call.rest))) {
          received = true;
          if (call.trace !== null) call.trace.responseBytes += chunk.length;
          yield chunk;
        }
        return;
      } catch (first) {
        if (received || !isNobodyListening(first)) throw first;
      }
    }
    await start(path, call);
    for await (const chunk of stream(path, request, secondAttempt(call))) {
      if (call.trace !== null) call.trace.responseBytes += chunk.length;
      yield chunk;
    }
  } catch (e) {
    error = e;
    throw e;
  } finally {
    // A consumer that breaks out ends the call here too.
    ended(call, error);
  }
}
