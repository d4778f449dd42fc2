// The private native surface, typed once so the addon is never `any`.
// Loaded with node-gyp-build: a local build in build/Release (or
// build/Debug) first, then a matching prebuild in prebuilds/
// (PREBUILDS_ONLY=1: prebuilds only).
import * as path from 'node:path';

export interface NativePeer {
  pid: number | null;
  uid: number | null;
  gid: number | null;
  sid?: string;
}

export interface NativeServerOptions {
  path: string;
  threads: number;
  maxRequestBytes: number;
  maxBufferedRequestBytes: number;
  requestTimeoutMs: number;
  maxConnections: number;
  /** How long a quit (or an idle stop) lets running conversations finish. */
  quitGraceMs: number;
  /** 0: never stop for being idle. */
  idleTimeoutMs: number;
  socketMode: number;
  checkPeer: boolean;
  pipeAccess: 'user' | 'everyone' | 'sddl';
  sddl: string;
  /** POSIX: an inherited listening socket to serve; -1: create one at `path`. */
  listenFd: number;
  /** POSIX: replace a live server's socket file (bind under a temporary name, rename over the path). */
  takeOver: boolean;
}

/** Stop reasons the addon reports. */
export type NativeStopReason = 'closed' | 'quit' | 'stolen' | 'idle' | 'listener-failed';

export interface NativeServerStats {
  connectionsReading: number;
  connectionsPeerCheck: number;
  connectionsHandling: number;
  requests: number;
  droppedProtocol: number;
  droppedTooLarge: number;
  droppedTimeout: number;
  droppedTooManyConnections: number;
  bytesIn: number;
  bytesOut: number;
}

/** What reply() did with a chunk (the native ReplyOutcome). */
export const enum ReplyOutcome {
  /** The kernel took all of it at once. */
  Sent = 0,
  /** Copied and queued: onWritten(token) follows once sent. */
  Queued = 1,
  /** Queued from the chunk's own memory: keep it referenced until onWritten or onReleased brings `token` back. */
  Borrowed = 2,
  /** The conversation is over. */
  Gone = 3,
  /** Copied and queued within the write mark (64 KiB queued): done for the caller, nothing follows. */
  Buffered = 4,
}

export const enum ReplyFlags {
  None = 0,
  End = 1,
  Quit = 2,
}

export interface NativeServerCallbacks {
  /**
   * A run of requests, flat: [id, request, pid, uid, gid, sid, id, ...]
   * (pid/uid/gid null where unknown, sid undefined off Windows).
   */
  onRequests(batch: unknown[]): void;
  onPeerCheck(id: number, peer: NativePeer): void;
  onWritten(id: number, tokens: number[]): void;
  onReleased(id: number, tokens: number[]): void;
  onLost(id: number, error: Error): void;
  onClientError(error: Error, peer: NativePeer): void;
  onStopped(reason: NativeStopReason): void;
}

export interface NativeServer {
  /** `takeOver`: overrides the constructor's option (the `version` server option decides at start). */
  start(takeOver?: boolean): Promise<void>;
  reply(id: number, chunk: string | Uint8Array | undefined, flags: ReplyFlags, token: number): ReplyOutcome;
  /** Conversations kept past the handler's first turn: watch them for clients that leave. */
  watch(ids: number[]): void;
  stats(): NativeServerStats;
  abort(id: number): void;
  allowPeer(id: number, allowed: boolean): void;
  /** A request's peer that came deferred (pid undefined in the batch), read now; null once the connection is closed. */
  peer(id: number): NativePeer | null;
  stop(graceMs: number): void;
  stopNow(): void;
  ref(): void;
  unref(): void;
}

export interface NativeClientOptions {
  waitIfBusy: boolean;
  waitIfNotFound: boolean;
  connectTimeoutMs: number;
  timeoutMs: number | undefined;
  serverUid: 'self' | number | undefined;
  maxResponseBytes: number | undefined;
}

export interface NativeClientCallbacks {
  onChunk(id: number, chunk: Buffer): void;
  onConnected(id: number): void;
  onComplete(id: number, error: Error | null, response?: Buffer): void;
}

export type NativeActiveState = 'listening' | 'not-listening' | 'invalid-path' | 'path-not-found' | 'other-error';

export interface NativeBinding {
  NativeServer: new (options: NativeServerOptions, callbacks: NativeServerCallbacks) => NativeServer;
  maxPayload: number;
  /** Requests/replies of this many bytes and more are sent from their own memory (kept referenced until done). */
  borrowThreshold: number;
  sendCommandSync(path: string, request: string | Uint8Array, options: NativeClientOptions): Buffer;
  getActiveStateSync(path: string): NativeActiveState;
  getActiveState(path: string): Promise<NativeActiveState>;
  setClientCallbacks(callbacks: NativeClientCallbacks): void;
  clientStart(id: number, path: string, request: string | Uint8Array, options: NativeClientOptions, stream: boolean): void;
  clientConnect(id: number, path: string, options: NativeClientOptions): void;
  clientSend(id: number, request: string | Uint8Array, stream: boolean): void;
  clientCancel(id: number, reason: 'abort' | 'timeout'): void;
  /** Streams: stop reading the response (the consumer fell behind) / read on. */
  clientPause(id: number): void;
  clientResume(id: number): void;
}

// Both lib/ (sources, under test) and dist/ (the package) sit one level
// below the package root.
const packageRoot = path.join(__dirname, '..');

function load(): NativeBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  try {
    return nodeGypBuild(packageRoot) as NativeBinding;
  } catch (cause) {
    // The directories node-gyp-build searched, in its order
    // (SIMPLE_IPC_PREBUILD replaces the package root).
    const root = process.env.SIMPLE_IPC_PREBUILD || packageRoot;
    const tuple = `${process.platform}-${process.arch}`;
    const tried = [
      ...(process.env.PREBUILDS_ONLY ? [] : [path.join(root, 'build', 'Release'), path.join(root, 'build', 'Debug')]),
      path.join(root, 'prebuilds', tuple),
      path.join(path.dirname(process.execPath), 'prebuilds', tuple),
    ];
    const error = new Error(
      `simple-ipc: no native addon for ${process.platform}-${process.arch} ` +
        `(Node ${process.version}, Node-API ${process.versions.napi}). Looked in:\n  ` +
        tried.join('\n  ') +
        `\nTo build it from source you need Python 3 and a C++17 compiler; then run ` +
        `\`npm rebuild simple-ipc --build-from-source\` (or \`npx node-gyp rebuild\` in ${packageRoot}).`,
      { cause },
    );
    (error as NodeJS.ErrnoException).code = 'ERR_IPC_ADDON_NOT_FOUND';
    throw error;
  }
}

export const native: NativeBinding = load();
