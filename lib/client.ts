// The client API. The addon connects and sends on the calling (JS) thread
// and reads small responses there too, or waits for them on its own I/O
// thread (POSIX, docs/design.md#client; on Windows the whole exchange runs
// there); this module only keeps the promises of the exchanges in flight,
// and a stream's queue (with its backpressure).
import type * as AutoStart from './auto-start.js';
import { clientRequestStarted, clientResponseEnded, type ClientTrace } from './diagnostics.js';
import { abortError, codeError, fromNative, normalizeNativeError, rethrowWithCallerStack, withCallerStack, type IpcError } from './errors.js';
import { native, type NativeActiveState, type NativeClientOptions } from './native.js';
import {
  checkPath,
  checkRequest,
  checkSignal,
  ClientCall,
  normalizeClientOptions,
  type ClientOptions,
  type ConnectOptions,
  type SyncClientOptions,
} from './options.js';

// The autoStart machinery (./auto-start.js and through it ./daemon.js,
// ./start-lock.js, child_process) is loaded by the first call that asks
// for autoStart: a client that never starts a daemon, such as the CLI's
// client subcommands, does not pay for loading it.
let autoStartModule: typeof AutoStart | undefined;
function autoStart(): typeof AutoStart {
  return (autoStartModule ??= require('./auto-start.js') as typeof AutoStart);
}

/** The state of a path, exactly as Git's `ipc_get_active_state()` reports it. */
export type ActiveState = NativeActiveState;

interface Pending {
  /** A request sent from its own memory stays referenced until the end. */
  keep?: string | Uint8Array;
  onChunk?: (chunk: Buffer) => void;
  onConnected?: () => void;
  onComplete: (error: IpcError | null, response?: Buffer) => void;
}

const pending = new Map<number, Pending>();
let nextId = 1;

/** What an exchange must keep referenced: a request the addon sends from its own memory. */
function borrowed(request: string | Uint8Array): Uint8Array | undefined {
  return typeof request !== 'string' && request.byteLength >= native.borrowThreshold ? request : undefined;
}

native.setClientCallbacks({
  onChunk(id, chunk) {
    pending.get(id)?.onChunk?.(chunk);
  },
  onConnected(id) {
    pending.get(id)?.onConnected?.();
  },
  onComplete(id, error, response) {
    const p = pending.get(id);
    if (p === undefined) return;
    pending.delete(id);
    p.onComplete(error as IpcError | null, response);
  },
});

const noUnhook = (): void => {};

// Wires an AbortSignal to a native exchange; returns the unhook function.
function watchSignal(id: number, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return noUnhook;
  const onAbort = () => native.clientCancel(id, 'abort');
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/**
 * Sends one request and resolves with the whole response.
 * Connect failures reject with `ENOENT`, `ECONNREFUSED`, ... (and `err.state`);
 * a response cut short rejects with `ERR_IPC_INCOMPLETE_RESPONSE`.
 */
export function sendCommand(path: string, request: string | Uint8Array, options?: ClientOptions): Promise<Buffer> {
  checkPath(path);
  checkRequest(request);
  const nativeOptions = normalizeClientOptions(options, ClientCall.Async);
  if (options?.autoStart !== undefined) {
    return autoStart().sendWithAutoStart((p, r, o) => sendOnce(p, r, o, normalizeClientOptions(o, ClientCall.Async), false), path, request, options);
  }
  return sendOnce(path, request, options, nativeOptions, true);
}

/** One exchange; `traced: false` when autoStart traces the whole call. */
function sendOnce(
  path: string,
  request: string | Uint8Array,
  options: ClientOptions | undefined,
  nativeOptions: NativeClientOptions,
  traced: boolean,
): Promise<Buffer> {
  const signal = checkSignal(options?.signal);
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const trace = traced ? clientRequestStarted(path, request, 'send') : null;
  return new Promise<Buffer>((resolve, reject) => {
    const id = nextId++;
    const unhook = watchSignal(id, signal);
    pending.set(id, {
      keep: borrowed(request),
      onComplete(error, response) {
        unhook();
        if (trace !== null) clientResponseEnded(trace, error, response);
        if (error) reject(normalizeNativeError(error, signal));
        else resolve(response as Buffer);
      },
    });
    native.clientStart(id, path, request, nativeOptions, false);
  }).then(undefined, rethrowWithCallerStack);
}

/**
 * Sends one request and blocks the calling thread until the whole response
 * is in. For command-line tools and Electron's main process at start-up;
 * never in a server's handler or a renderer.
 */
export function sendCommandSync(path: string, request: string | Uint8Array, options?: SyncClientOptions): Buffer {
  checkPath(path);
  checkRequest(request);
  const nativeOptions = normalizeClientOptions(options, ClientCall.Sync);
  const trace = clientRequestStarted(path, request, 'sync');
  if (trace === null) return nativeSendSync(path, request, nativeOptions);
  return tracedSync(trace, () => nativeSendSync(path, request, nativeOptions));
}

function nativeSendSync(path: string, request: string | Uint8Array, nativeOptions: NativeClientOptions): Buffer {
  try {
    return native.sendCommandSync(path, request, nativeOptions);
  } catch (error) {
    throw fromNative(error);
  }
}

function tracedSync(trace: ClientTrace, send: () => Buffer): Buffer {
  try {
    const response = send();
    clientResponseEnded(trace, null, response);
    return response;
  } catch (error) {
    clientResponseEnded(trace, error as Error);
    throw error;
  }
}

/**
 * Sends one request and yields the response in chunks as they arrive. The
 * exchange starts at once; breaking out of the loop cancels it. The
 * iteration throws if the response is cut short, so a loop that ends
 * normally has seen the whole response.
 */
export function streamCommand(path: string, request: string | Uint8Array, options?: ClientOptions): AsyncIterableIterator<Buffer> {
  checkPath(path);
  checkRequest(request);
  const nativeOptions = normalizeClientOptions(options, ClientCall.Async);
  if (options?.autoStart !== undefined) {
    return autoStart().streamWithAutoStart((p, r, o) => new ResponseStream(p, r, normalizeClientOptions(o, ClientCall.Async), checkSignal(o.signal), false), path, request, options);
  }
  const signal = checkSignal(options?.signal);
  return new ResponseStream(path, request, nativeOptions, signal, true);
}

/**
 * A stream stops reading (native side) once this many response bytes wait
 * for the consumer, and reads on when they fall to STREAM_LOW_WATER: a
 * slow consumer then holds the server back through the socket instead of
 * piling the response up in memory.
 */
const STREAM_HIGH_WATER = 1024 * 1024;
const STREAM_LOW_WATER = STREAM_HIGH_WATER / 4;

class ResponseStream implements AsyncIterableIterator<Buffer> {
  private readonly chunks: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  private ended = false;
  private error: IpcError | null = null;
  private waiter: (() => void) | null = null;
  private readonly id: number;
  private readonly unhook: () => void;

  constructor(
    path: string,
    request: string | Uint8Array,
    options: ReturnType<typeof normalizeClientOptions>,
    signal: AbortSignal | undefined,
    traced: boolean,
  ) {
    this.id = nextId++;
    if (signal?.aborted) {
      this.ended = true;
      this.error = abortError(signal);
      this.unhook = () => {};
      return;
    }
    this.unhook = watchSignal(this.id, signal);
    const trace = traced ? clientRequestStarted(path, request, 'stream') : null;
    pending.set(this.id, {
      keep: borrowed(request),
      onChunk: (chunk) => {
        if (trace !== null) trace.responseBytes += chunk.length;
        this.chunks.push(chunk);
        this.queuedBytes += chunk.length;
        if (!this.paused && this.queuedBytes >= STREAM_HIGH_WATER) {
          this.paused = true;
          native.clientPause(this.id);
        }
        this.wake();
      },
      onComplete: (error) => {
        this.unhook();
        if (trace !== null) clientResponseEnded(trace, error);
        this.ended = true;
        if (error) this.error = normalizeNativeError(error, signal);
        this.wake();
      },
    });
    native.clientStart(this.id, path, request, options, true);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private take(): Buffer | undefined {
    const chunk = this.chunks.shift();
    if (chunk === undefined) return undefined;
    this.queuedBytes -= chunk.length;
    if (this.paused && !this.ended && this.queuedBytes <= STREAM_LOW_WATER) {
      this.paused = false;
      native.clientResume(this.id);
    }
    return chunk;
  }

  async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      const chunk = this.take();
      if (chunk !== undefined) return { value: chunk, done: false };
      if (this.ended) {
        if (this.error) {
          const error = this.error;
          this.error = null;
          throw withCallerStack(error, ResponseStream.prototype.next);
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  async return(): Promise<IteratorResult<Buffer>> {
    if (!this.ended) {
      // The consumer left: ignore the rest, but keep the request
      // referenced until the native side reports the end (it may still be
      // sending from the request's memory).
      const entry = pending.get(this.id);
      if (entry) pending.set(this.id, { keep: entry.keep, onComplete: () => {} });
      this.unhook();
      this.ended = true;
      native.clientCancel(this.id, 'abort');
    }
    this.chunks.length = 0;
    this.queuedBytes = 0;
    this.error = null;
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }
}

/** A connection made ahead of its request (Git's `ipc_client_try_connect`). */
export interface IpcConnection extends AsyncDisposable {
  /**
   * Sends the one request of this connection and resolves with the response.
   * If the connection already ended (its `signal` aborted, its `timeoutMs`
   * ran out), rejects with that reason (`ABORT_ERR`, `ERR_IPC_TIMEOUT`);
   * a second `send()`, or one after `close()`, rejects with
   * `ERR_IPC_CONNECTION_USED`.
   */
  send(request: string | Uint8Array): Promise<Buffer>;
  /** Closes the connection without sending (a liveness probe). */
  close(): void;
  /** `await using connection = await connect(path)`: closes it. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Connects now and sends later; the connection carries exactly one request. */
export function connect(path: string, options?: ConnectOptions): Promise<IpcConnection> {
  checkPath(path);
  const nativeOptions = normalizeClientOptions(options, ClientCall.Connect);
  const signal = checkSignal(options?.signal);
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise<IpcConnection>((resolve, reject) => {
    const id = nextId++;
    const unhook = watchSignal(id, signal);
    let state: 'connecting' | 'idle' | 'sending' | 'closed' = 'connecting';
    // Why an idle connection ended before send() (abort, timeout, server gone).
    let endedBeforeSend: IpcError | null = null;
    let sendResult: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
    const connection: IpcConnection = {
      send(request) {
        checkRequest(request);
        if (state === 'idle' && signal?.aborted) {
          // The abort's cancel is on its way to the native side: say why now.
          connection.close();
          return Promise.reject(withCallerStack(abortError(signal), connection.send));
        }
        if (state !== 'idle') {
          if (endedBeforeSend !== null) {
            const reason = endedBeforeSend;
            endedBeforeSend = null;  // reported once; later calls: used
            return Promise.reject(withCallerStack(reason, connection.send));
          }
          return Promise.reject(
            codeError('ERR_IPC_CONNECTION_USED', 'a connection carries exactly one request; this one is used or closed'),
          );
        }
        state = 'sending';
        return new Promise<Buffer>((res, rej) => {
          sendResult = { resolve: res, reject: rej };
          native.clientSend(id, request, false);
        }).then(undefined, rethrowWithCallerStack);
      },
      close() {
        if (state === 'closed') return;
        const wasSending = state === 'sending';
        state = 'closed';
        if (!wasSending) {
          pending.delete(id);
          unhook();
        }
        native.clientCancel(id, 'abort');
      },
      [Symbol.asyncDispose]() {
        connection.close();
        return Promise.resolve();
      },
    };
    pending.set(id, {
      onConnected() {
        if (state !== 'connecting') return;
        state = 'idle';
        resolve(connection);
      },
      onComplete(error, response) {
        unhook();
        if (state === 'connecting') {
          state = 'closed';
          reject(normalizeNativeError(error ?? codeError('ERR_IPC_UNKNOWN', 'unknown error'), signal));
          return;
        }
        const wasIdle = state === 'idle';
        state = 'closed';
        if (sendResult) {
          if (error) sendResult.reject(normalizeNativeError(error, signal));
          else sendResult.resolve(response as Buffer);
        } else if (wasIdle && error) {
          endedBeforeSend = normalizeNativeError(error, signal);
        }
      },
    });
    native.clientConnect(id, path, nativeOptions);
  }).then(undefined, rethrowWithCallerStack);
}

/** Reports whether a server listens at `path` (Git's five states). Never rejects. */
export function getActiveState(path: string): Promise<ActiveState> {
  checkPath(path);
  return native.getActiveState(path);
}

/** Synchronous {@link getActiveState}. */
export function getActiveStateSync(path: string): ActiveState {
  checkPath(path);
  return native.getActiveStateSync(path);
}
