// The server API. The addon accepts and reads whole requests on its own
// threads; this module runs the handler on the JS thread, where the addon
// writes the reply at once when the socket takes it and leaves the rest to
// its threads (docs/design.md#the-posix-server).
import { EventEmitter } from 'node:events';
import * as nodePath from 'node:path';

import { countResponse, serverRequestStarted, serverResponseEnded, traceHandler, type ServerTrace } from './diagnostics.js';
import { argError, codeError, fromNative, rethrowWithCallerStack, type IpcError } from './errors.js';
import { native, ReplyFlags, ReplyOutcome, type NativeServer, type NativeStopReason } from './native.js';
import {
  checkPath,
  closeGraceMs,
  normalizeServerOptions,
  type CloseOptions,
  type PeerInfo,
  type ServerOptions,
} from './options.js';
import { checkReplaceOption, checkVersionOption, replaceRunningServer, startVersioned } from './replace.js';
import { checkCloseOnSignals, registerForSignals, unregisterForSignals, type CloseSignal } from './signals.js';
import { removeVersionFile, writeVersionFile } from './version-file.js';

/** Return this from a handler to answer with an empty response and shut the server down (Git's "quit"). */
export const QUIT: unique symbol = Symbol.for('simple-ipc.quit') as typeof QUIT;

export type HandlerResult = void | undefined | null | string | Uint8Array | typeof QUIT;

export interface Reply {
  /**
   * Sends `chunk` to the client at once, as data packets. Resolves when the
   * bytes are handed to the kernel, or at once when a copy of them waits
   * in a queue of at most 64 KiB (await it for backpressure). Never
   * rejects: if the client left, it resolves and `ctx.signal` is aborted.
   * Throws `ERR_IPC_REPLY_ENDED` when called after the handler finished.
   */
  write(chunk: string | Uint8Array): Promise<void>;
}

export interface RequestContext {
  /** Who is on the other end. */
  readonly peer: PeerInfo;
  /** Aborted when the client goes away or the server drops the conversation. */
  readonly signal: AbortSignal;
}

export type Handler = (request: Buffer, reply: Reply, ctx: RequestContext) => HandlerResult | Promise<HandlerResult>;

/**
 * Why a server stopped: close(), a handler's QUIT, its socket path was
 * removed or replaced, it was idle for `idleTimeoutMs`, or its listening
 * socket failed under it (`'listener-failed'`: an inherited socket closed
 * or shut down by another holder).
 */
export type CloseReason = NativeStopReason;

/** A snapshot of a server's counters ({@link IpcServer.stats}). */
export interface ServerStats {
  /** Connections open now, by what they are doing. */
  connections: {
    open: number;
    /** Still sending their request. */
    sending: number;
    /** Waiting for `allowPeer` to decide. */
    awaitingAllowPeer: number;
    /** Their request is with the handler, or their response on its way. */
    beingAnswered: number;
  };
  /** Responses completed (the flush packet sent). */
  requests: number;
  /** Handlers that threw or rejected (and allowPeer calls that did). */
  handlerErrors: number;
  /** Clients dropped before their request reached the handler, or while their response was stalled. */
  dropped: { protocol: number; tooLarge: number; timeout: number; tooManyConnections: number };
  bytesIn: number;
  bytesOut: number;
  /** Milliseconds since the server started listening. */
  uptimeMs: number;
}

export interface IpcServerEvents {
  /** A handler threw or rejected; the client got no flush (an incomplete response). */
  handlerError: [error: unknown, request: Buffer, peer: PeerInfo];
  /** A client was dropped before its request reached the handler (protocol error, limits, too slow). */
  clientError: [error: IpcError, peer: PeerInfo];
  /** The server stopped; no socket file of ours is left. */
  close: [reason: CloseReason];
}

function toPeer(p: { pid: number | null; uid: number | null; gid: number | null; sid?: string }): PeerInfo {
  return p.sid === undefined ? { pid: p.pid, uid: p.uid, gid: p.gid } : { pid: p.pid, uid: p.uid, gid: p.gid, sid: p.sid };
}

const writtenPromise = Promise.resolve();
const UNKNOWN_PEER = { pid: null, uid: null, gid: null } as const;

// Fields per request in the addon's onRequests batch.
const REQUEST_FIELDS = 6;

// process.exit() and fatal exceptions end the main thread without the
// environment cleanup that stops servers (a natural exit or a worker's
// end runs it). The 'exit' event still fires, synchronously: stop every
// running server there, so that no socket file is left behind.
const running = new Set<NativeServer>();
let exitHookInstalled = false;
function stopAllOnExit(): void {
  for (const server of running) server.stopNow();
  running.clear();
}
function trackRunning(server: NativeServer): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', stopAllOnExit);
  }
  running.add(server);
}

class Conversation implements Reply, RequestContext {
  done = false;
  /** Diagnostics of this conversation; null unless someone subscribes. */
  trace: ServerTrace | null = null;
  private controller: AbortController | null = null;
  private writes: Map<number, () => void> | null = null;
  private peerInfo: PeerInfo | null = null;

  // The peer's fields from the request batch (not the batch itself: it
  // holds the other requests' buffers, which must not live as long as
  // this conversation). pid undefined: not read yet (POSIX reads a peer's
  // credentials only when asked, docs/api.md#the-handler).
  private readonly pid: number | null | undefined;
  private readonly uid: number | null;
  private readonly gid: number | null;
  private readonly sid: string | undefined;

  constructor(
    private readonly server: IpcServer,
    private readonly nativeServer: NativeServer,
    readonly id: number,
    batch: unknown[],
    at: number,
  ) {
    this.pid = batch[at + 2] as number | null | undefined;
    this.uid = batch[at + 3] as number | null;
    this.gid = batch[at + 4] as number | null;
    this.sid = batch[at + 5] as string | undefined;
  }

  // Built on first use: most handlers never look.
  get peer(): PeerInfo {
    if (this.peerInfo === null) {
      if (this.pid === undefined) {
        // One getsockopt() on the JS thread, while the connection is open;
        // once it is closed nobody can tell any more.
        this.peerInfo = toPeer(this.nativeServer.peer(this.id) ?? UNKNOWN_PEER);
      } else {
        this.peerInfo = toPeer({ pid: this.pid, uid: this.uid, gid: this.gid, sid: this.sid });
      }
    }
    return this.peerInfo;
  }

  get signal(): AbortSignal {
    if (this.controller === null) this.controller = new AbortController();
    return this.controller.signal;
  }

  write(chunk: string | Uint8Array): Promise<void> {
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw argError('chunk', 'a string, Buffer or Uint8Array', chunk);
    }
    if (this.done) {
      if (this.controller?.signal.aborted) return writtenPromise;
      throw codeError('ERR_IPC_REPLY_ENDED', 'reply.write() after the handler finished');
    }
    if (chunk.length === 0) return writtenPromise;
    if (this.trace !== null) countResponse(this.trace, chunk);
    const token = this.server._nextToken();
    const outcome = this.nativeServer.reply(this.id, chunk, ReplyFlags.None, token);
    // Taken by the kernel at once, or queued under the write mark
    // (docs/design.md#memory): done, as a stream's write() under its
    // highWaterMark.
    if (outcome === ReplyOutcome.Sent || outcome === ReplyOutcome.Buffered) return writtenPromise;
    // The client is gone: the addon has queued the event that aborts
    // ctx.signal. Resolve on a later turn of the event loop, so that a
    // `while (!ctx.signal.aborted) await reply.write(...)` loop lets that
    // event in instead of spinning on resolved promises.
    if (outcome === ReplyOutcome.Gone) return new Promise<void>((resolve) => setImmediate(resolve));
    if (outcome === ReplyOutcome.Borrowed) this.server._pin(token, chunk as Uint8Array);
    return new Promise<void>((resolve) => {
      if (this.writes === null) this.writes = new Map();
      this.writes.set(token, resolve);
    });
  }

  written(tokens: number[]): void {
    if (this.writes === null) return;
    for (const token of tokens) {
      const resolve = this.writes.get(token);
      if (resolve) {
        this.writes.delete(token);
        resolve();
      }
    }
  }

  // The conversation is over for JS: pending write promises settle (their
  // bytes are queued ahead of the flush, or the client is gone).
  settle(reason?: Error): void {
    this.done = true;
    if (this.writes !== null) {
      for (const resolve of this.writes.values()) resolve();
      this.writes.clear();
    }
    if (reason !== undefined) {
      if (this.controller === null) this.controller = new AbortController();
      this.controller.abort(reason);
    }
  }
}

// Only createServer makes servers: an IpcServer that never started would
// never close (its closed promise waits for a stop that cannot come).
const CONSTRUCT = Symbol('IpcServer.construct');
let constructServer: (path: string, handler: Handler, options: ServerOptions | undefined) => IpcServer;

/**
 * A running simple-ipc server. Made only by {@link createServer}, which
 * resolves with it once it listens; `new IpcServer()` throws
 * `ERR_ILLEGAL_CONSTRUCTOR`.
 */
export class IpcServer extends EventEmitter<IpcServerEvents> {
  static {
    constructServer = (path, handler, options) => new IpcServer(CONSTRUCT, path, handler, options);
  }

  /** The absolute socket path (POSIX) or path the pipe name is derived from (Windows). */
  readonly path: string;
  /** Resolves once the server has stopped, with the reason. Never rejects. */
  readonly closed: Promise<CloseReason>;

  private readonly nativeServer: NativeServer;
  private readonly conversations = new Map<number, Conversation>();
  private readonly handler: Handler;
  private readonly closeTimeoutMs: number;
  private readonly closeSignals: readonly CloseSignal[];
  private readonly version: string | undefined;
  private versionFile: number | null = null;
  private token = 0;
  private readonly pinned = new Map<number, Uint8Array>();
  private resolveClosed!: (reason: CloseReason) => void;
  private stopped = false;
  private handlerErrors = 0;
  /** allowPeer decisions still awaited, by connection, with the timer that bounds each. */
  private readonly peerChecks = new Map<number, NodeJS.Timeout | undefined>();
  /** How long an allowPeer decision may take (requestTimeoutMs); 0: no limit. */
  private readonly peerCheckTimeoutMs: number;
  private peerCheckTimeouts = 0;
  private startedAt = 0;
  private stoppedAt = 0;

  /** Not callable: use {@link createServer}. */
  private constructor(token: typeof CONSTRUCT, path: string, handler: Handler, options: ServerOptions | undefined) {
    if (token !== CONSTRUCT) {
      throw codeError('ERR_ILLEGAL_CONSTRUCTOR', 'IpcServer is not constructible: createServer(path, handler, options) makes a listening one', TypeError as ErrorConstructor);
    }
    super();
    this.path = path;
    this.handler = handler;
    const normalized = normalizeServerOptions(path, options);
    this.closeTimeoutMs = normalized.closeTimeoutMs;
    this.peerCheckTimeoutMs = normalized.native.requestTimeoutMs;
    this.closeSignals = checkCloseOnSignals(options?.closeOnSignals);
    this.version = checkVersionOption(options?.version);
    const allowPeer = normalized.allowPeer;
    this.closed = new Promise<CloseReason>((resolve) => (this.resolveClosed = resolve));
    this.nativeServer = new native.NativeServer(normalized.native, {
      onRequests: (batch) => this.onRequests(batch),
      onPeerCheck: (id, peer) => this.checkPeer(allowPeer!, id, toPeer(peer)),
      onWritten: (id, tokens) => {
        if (this.pinned.size > 0) for (const token of tokens) this.pinned.delete(token);
        this.conversations.get(id)?.written(tokens);
      },
      onReleased: (_id, tokens) => {
        for (const token of tokens) this.pinned.delete(token);
      },
      onLost: (id, error) => {
        const conversation = this.conversations.get(id);
        if (conversation === undefined) return;
        this.conversations.delete(id);
        fromNative(error);
        if (conversation.trace !== null) serverResponseEnded(conversation.trace, 'client-gone', error);
        conversation.settle(error);
      },
      onClientError: (error, peer) => {
        if (this.listenerCount('clientError') > 0) this.emit('clientError', fromNative(error) as IpcError, toPeer(peer));
      },
      onStopped: (reason) => {
        this.stopped = true;
        this.stoppedAt = Date.now();
        running.delete(this.nativeServer);
        for (const conversation of this.conversations.values()) {
          conversation.settle(codeError('ERR_IPC_SERVER_CLOSED', 'server is closed'));
        }
        this.conversations.clear();
        for (const timer of this.peerChecks.values()) clearTimeout(timer);
        this.peerChecks.clear();
        this.pinned.clear(); // every native thread has ended
        unregisterForSignals(this);
        if (this.versionFile !== null) removeVersionFile(this.path, this.versionFile);
        this.resolveClosed(reason);
        this.emit('close', reason);
      },
    });
  }

  /** @internal `takeOver`: decided at start by the `version` option. */
  _start(takeOver?: boolean): Promise<void> {
    return this.nativeServer.start(takeOver).then(() => {
      this.startedAt = Date.now();
      if (this.stopped) return;
      trackRunning(this.nativeServer);
      registerForSignals(this, this.closeSignals);
      if (this.version !== undefined) this.versionFile = writeVersionFile(this.path, this.version);
    });
  }

  /** @internal Keeps a chunk the addon sends from its own memory alive. */
  _pin(token: number, chunk: Uint8Array): void {
    this.pinned.set(token, chunk);
  }

  /** @internal */
  _nextToken(): number {
    this.token = this.token >= Number.MAX_SAFE_INTEGER ? 1 : this.token + 1;
    return this.token;
  }

  // allowPeer runs on the JS thread; the connection waits, its request
  // clock paused, until the verdict. A verdict that is not a promise is
  // applied at once. A promise is given requestTimeoutMs from now (from
  // when the JS thread asks, so a busy JS thread costs clients nothing):
  // past it the connection is dropped with a clientError, so a verdict
  // that never comes cannot pin connections until maxConnections refuses
  // everyone.
  private checkPeer(allowPeer: (peer: PeerInfo) => unknown, id: number, peer: PeerInfo): void {
    let verdict: unknown;
    try {
      verdict = allowPeer(peer);
    } catch (error) {
      this.nativeServer.allowPeer(id, false);
      this.reportHandlerError(error, Buffer.alloc(0), peer);
      return;
    }
    if (verdict === null || typeof verdict !== 'object' || typeof (verdict as PromiseLike<unknown>).then !== 'function') {
      this.nativeServer.allowPeer(id, verdict === true);
      return;
    }
    const limit = this.peerCheckTimeoutMs;
    const timer = limit > 0 ? setTimeout(() => this.peerCheckExpired(id, peer), limit).unref() : undefined;
    this.peerChecks.set(id, timer);
    Promise.resolve(verdict as PromiseLike<unknown>).then(
      (ok) => this.peerDecided(id, ok === true),
      (error: unknown) => {
        this.peerDecided(id, false);
        this.reportHandlerError(error, Buffer.alloc(0), peer);
      },
    );
  }

  private peerDecided(id: number, allowed: boolean): void {
    if (!this.peerChecks.has(id)) return; // too late: already dropped, or the server stopped
    clearTimeout(this.peerChecks.get(id));
    this.peerChecks.delete(id);
    this.nativeServer.allowPeer(id, allowed);
  }

  private peerCheckExpired(id: number, peer: PeerInfo): void {
    // One more turn of the event loop first: a verdict whose I/O finished
    // while the JS thread was busy is delivered in the poll phase, which
    // this timer's phase precedes.
    setImmediate(() => {
      if (!this.peerChecks.has(id)) return;
      this.peerChecks.delete(id);
      this.nativeServer.allowPeer(id, false);
      this.peerCheckTimeouts++;
      if (this.listenerCount('clientError') > 0) {
        const error = codeError('ERR_IPC_ALLOW_PEER_TIMEOUT', `allowPeer did not decide within requestTimeoutMs (${this.peerCheckTimeoutMs} ms)`);
        this.emit('clientError', error, peer);
      }
    });
  }

  private onRequests(batch: unknown[]): void {
    let kept: Conversation[] | null = null;
    for (let i = 0; i < batch.length; i += REQUEST_FIELDS) {
      const conversation = new Conversation(this, this.nativeServer, batch[i] as number, batch, i);
      this.runHandler(conversation, batch[i + 1] as Buffer);
      if (!conversation.done) {
        this.conversations.set(conversation.id, conversation);
        (kept ??= []).push(conversation);
      }
    }
    // Replies written during the handler's first turn need no watching; the
    // rest are watched for clients that leave (ctx.signal) once the
    // handlers' own microtasks have run.
    if (kept !== null) {
      const pending = kept;
      setImmediate(() => {
        if (this.stopped) return;
        const ids = pending.filter((c) => !c.done).map((c) => c.id);
        if (ids.length > 0) this.nativeServer.watch(ids);
      });
    }
  }

  private runHandler(conversation: Conversation, request: Buffer): void {
    conversation.trace = serverRequestStarted(this.path, conversation.id, conversation, request.length);
    let result: HandlerResult | Promise<HandlerResult>;
    try {
      result = traceHandler(conversation.trace, () => this.handler(request, conversation, conversation));
    } catch (error) {
      this.fail(conversation, error, request);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<HandlerResult>).then === 'function') {
      (result as Promise<HandlerResult>).then(
        (value) => this.finish(conversation, value, request),
        (error: unknown) => this.fail(conversation, error, request),
      );
    } else {
      this.finish(conversation, result as HandlerResult, request);
    }
  }

  private finish(conversation: Conversation, value: HandlerResult, request: Buffer): void {
    if (conversation.done) return;
    if (value === QUIT) {
      if (conversation.trace !== null) serverResponseEnded(conversation.trace, 'quit');
      this.conversations.delete(conversation.id);
      conversation.settle();
      this.nativeServer.reply(conversation.id, undefined, ReplyFlags.End | ReplyFlags.Quit, 0);
      return;
    }
    if (value !== undefined && value !== null && typeof value !== 'string' && !(value instanceof Uint8Array)) {
      this.fail(conversation, argError('handler result', 'a string, Uint8Array, QUIT or undefined', value), request);
      return;
    }
    if (conversation.trace !== null) {
      countResponse(conversation.trace, value as string | Uint8Array | null | undefined);
      serverResponseEnded(conversation.trace, 'ok');
    }
    this.conversations.delete(conversation.id);
    conversation.settle();
    const token = value instanceof Uint8Array ? this._nextToken() : 0;
    const outcome = this.nativeServer.reply(conversation.id, value ?? undefined, ReplyFlags.End, token);
    if (outcome === ReplyOutcome.Borrowed) this._pin(token, value as Uint8Array);
  }

  private fail(conversation: Conversation, error: unknown, request: Buffer): void {
    if (conversation.done) return;
    if (conversation.trace !== null) serverResponseEnded(conversation.trace, 'handler-error', error);
    // Read while the connection is still open: the abort below closes it.
    if (this.listenerCount('handlerError') > 0) void conversation.peer;
    this.conversations.delete(conversation.id);
    conversation.settle(error instanceof Error ? error : new Error(String(error)));
    // No flush: the client must see an incomplete response, never a
    // complete one.
    this.nativeServer.abort(conversation.id);
    this.reportHandlerError(error, request, conversation.peer);
  }

  private reportHandlerError(error: unknown, request: Buffer, peer: PeerInfo): void {
    this.handlerErrors++;
    if (this.listenerCount('handlerError') > 0) {
      this.emit('handlerError', error, request, peer);
    } else {
      process.emitWarning(`simple-ipc handler failed (no 'handlerError' listener): ${error instanceof Error ? error.stack : String(error)}`, {
        code: 'SIMPLE_IPC_HANDLER_ERROR',
      });
    }
  }

  /**
   * Stops accepting, drops connections whose request is not complete, lets
   * running handlers finish for up to `timeoutMs` (default: the server's
   * `closeTimeoutMs`; 0: no limit; `force: true`: not at all), then drops
   * the rest, stops every thread and removes
   * the socket file (unless it is no longer ours). Resolves when all that
   * is done.
   */
  close(options?: CloseOptions): Promise<void> {
    const grace = closeGraceMs(options, this.closeTimeoutMs);
    if (!this.stopped) this.nativeServer.stop(grace);
    return this.closed.then(() => undefined);
  }

  /** A snapshot of the server's counters. After it stopped: the final figures. */
  stats(): ServerStats {
    const s = this.nativeServer.stats();
    const end = this.stopped ? this.stoppedAt : Date.now();
    return {
      connections: {
        open: s.connectionsReading + s.connectionsPeerCheck + s.connectionsHandling,
        sending: s.connectionsReading,
        awaitingAllowPeer: s.connectionsPeerCheck,
        beingAnswered: s.connectionsHandling,
      },
      requests: s.requests,
      handlerErrors: this.handlerErrors,
      dropped: {
        protocol: s.droppedProtocol,
        tooLarge: s.droppedTooLarge,
        timeout: s.droppedTimeout + this.peerCheckTimeouts,
        tooManyConnections: s.droppedTooManyConnections,
      },
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      uptimeMs: this.startedAt === 0 ? 0 : end - this.startedAt,
    };
  }

  /** Keeps the event loop alive while the server runs (the default). */
  ref(): this {
    if (!this.stopped) this.nativeServer.ref();
    return this;
  }

  /** Lets the process exit even though the server runs. */
  unref(): this {
    if (!this.stopped) this.nativeServer.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Starts a simple-ipc server at `path` (Git's rules: lock file, refuse a
 * live server's path with `EADDRINUSE`, replace a stale socket) and
 * resolves once it accepts connections.
 */
export function createServer(path: string, handler: Handler, options?: ServerOptions): Promise<IpcServer> {
  checkPath(path);
  if (typeof handler !== 'function') throw argError('handler', 'a function', handler);
  // Argument errors throw here, synchronously; start failures reject.
  // Windows: the pipe name comes from the path as given, by Git's rule
  // (a relative path from the current directory's final path, `..` only
  // after its directory is checked); resolving it here would change it.
  const replace = checkReplaceOption(options?.replace, options?.listenFd);
  const server = constructServer(process.platform === 'win32' ? path : nodePath.resolve(path), handler, options);
  const version = replace === null && options?.listenFd === undefined ? checkVersionOption(options?.version) : undefined;
  let started: Promise<void>;
  if (replace !== null) started = replaceRunningServer(server.path, replace, () => server._start());
  else if (version !== undefined) started = startVersioned(server.path, version, (takeOver) => server._start(takeOver));
  else started = server._start();
  return started.then(() => server, rethrowWithCallerStack);
}
