// node:diagnostics_channel events, the way undici and node:http publish
// theirs, so that APM and OpenTelemetry instrumentation can subscribe
// without patching the library (docs/design.md#diagnostics):
//
//   simple-ipc:server:request   a request reached the handler
//   simple-ipc:server:response  its conversation ended (ok, quit, handler error, client gone)
//   simple-ipc:client:request   sendCommand/streamCommand/sendCommandSync started
//   simple-ipc:client:response  it ended (response or error)
//
// These are plain channels: a request's start and end are reported from
// different callbacks of the addon, not around one call. The handler call
// itself is the one place that is a call: it runs inside the tracing
// channel `simple-ipc:server:handler` (tracing:simple-ipc:server:handler:
// start/end/asyncStart/asyncEnd/error), so that a subscriber's
// `start.bindStore()` (an AsyncLocalStorage span) is the handler's context.
//
// With nobody subscribed every helper returns after one `hasSubscribers`
// check, before any message object is built: publishing costs nothing
// measurable then (see bench/).
import * as dc from 'node:diagnostics_channel';

// The global `performance`: importing node:perf_hooks would cost every
// process's start-up some 10 ms.

import type { PeerInfo } from './options.js';

export const serverRequestChannel = dc.channel('simple-ipc:server:request');
export const serverResponseChannel = dc.channel('simple-ipc:server:response');
export const clientRequestChannel = dc.channel('simple-ipc:client:request');
export const clientResponseChannel = dc.channel('simple-ipc:client:response');
export const serverHandlerChannel = dc.tracingChannel<object, ServerRequestMessage>('simple-ipc:server:handler');

/** `simple-ipc:server:request`; also the context of the handler's tracing channel. */
export interface ServerRequestMessage {
  /** The server's path. */
  path: string;
  /** The conversation's id (unique per server). */
  id: number;
  peer: PeerInfo;
  requestBytes: number;
}

/** How a conversation ended for the server: answered, answered with QUIT, the handler failed, or the client or server dropped it. */
export type ServerOutcome = 'ok' | 'quit' | 'handler-error' | 'client-gone';

/** `simple-ipc:server:response` */
export interface ServerResponseMessage extends ServerRequestMessage {
  outcome: ServerOutcome;
  /** Bytes of response payload the handler produced (pkt-line framing not counted). */
  responseBytes: number;
  /** From the request reaching JS to the end, in ms. */
  durationMs: number;
  /** The handler's error ('handler-error') or why the conversation was lost ('client-gone'). */
  error?: unknown;
}

/** `simple-ipc:client:request` */
export interface ClientRequestMessage {
  path: string;
  requestBytes: number;
  /** 'send' (sendCommand), 'stream' (streamCommand) or 'sync' (sendCommandSync). */
  kind: 'send' | 'stream' | 'sync';
}

/** `simple-ipc:client:response` */
export interface ClientResponseMessage extends ClientRequestMessage {
  responseBytes: number;
  durationMs: number;
  /** The error's code (ECONNREFUSED, ERR_IPC_INCOMPLETE_RESPONSE, ABORT_ERR, ...), or null. */
  code: string | null;
  error: Error | null;
  /**
   * Only when the call's `autoStart` found nobody there and started (or
   * found, or failed to start) the daemon before its exchange: how that
   * went, and how long it took (part of `durationMs`).
   */
  autoStart?: AutoStartReport;
}

/** `ClientResponseMessage.autoStart`. */
export interface AutoStartReport {
  /** `'started'`: this call spawned the daemon; `'running'`: another caller's daemon came up; `'failed'`: the start failed (the call's error says why). */
  state: 'started' | 'running' | 'failed';
  /** The daemon this call spawned (with `'started'`). */
  pid?: number;
  durationMs: number;
}

/** A conversation being traced: kept only while someone subscribes. */
export interface ServerTrace {
  message: ServerRequestMessage;
  started: number;
  responseBytes: number;
}

function byteLength(data: string | Uint8Array): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
}

/**
 * A request reached JS. Null (nothing built, `source.peer` not read) when
 * nobody subscribes.
 */
export function serverRequestStarted(path: string, id: number, source: { readonly peer: PeerInfo }, requestBytes: number): ServerTrace | null {
  if (!serverRequestChannel.hasSubscribers && !serverResponseChannel.hasSubscribers && !serverHandlerChannel.hasSubscribers) return null;
  const message: ServerRequestMessage = { path, id, peer: source.peer, requestBytes };
  if (serverRequestChannel.hasSubscribers) serverRequestChannel.publish(message);
  return { message, started: performance.now(), responseBytes: 0 };
}

/** The handler wrote `chunk` (reply.write or its result). */
export function countResponse(trace: ServerTrace, chunk: string | Uint8Array | null | undefined): void {
  if (chunk !== null && chunk !== undefined) trace.responseBytes += byteLength(chunk);
}

export function serverResponseEnded(trace: ServerTrace, outcome: ServerOutcome, error?: unknown): void {
  if (!serverResponseChannel.hasSubscribers) return;
  const message: ServerResponseMessage = {
    ...trace.message,
    outcome,
    responseBytes: trace.responseBytes,
    durationMs: performance.now() - trace.started,
  };
  if (error !== undefined) message.error = error;
  serverResponseChannel.publish(message);
}

/**
 * Calls the handler, inside the `simple-ipc:server:handler` tracing
 * channel when it has subscribers (start/end around the call; asyncStart/
 * asyncEnd or error when a returned promise settles).
 */
export function traceHandler<R>(trace: ServerTrace | null, call: () => R): R {
  if (trace === null || !serverHandlerChannel.hasSubscribers) return call();
  const context = trace.message as ServerRequestMessage & { error?: unknown; result?: unknown };
  const channels = serverHandlerChannel;
  return channels.start.runStores(context, () => {
    let result: R;
    try {
      result = call();
    } catch (error) {
      context.error = error;
      channels.error.publish(context);
      throw error;
    } finally {
      channels.end.publish(context);
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      (result as unknown as Promise<unknown>).then(
        (value) => {
          context.result = value;
          channels.asyncStart.publish(context);
          channels.asyncEnd.publish(context);
        },
        (error: unknown) => {
          context.error = error;
          channels.error.publish(context);
          channels.asyncStart.publish(context);
          channels.asyncEnd.publish(context);
        },
      );
    }
    return result;
  });
}

/** A client exchange being traced. */
export interface ClientTrace {
  message: ClientRequestMessage;
  started: number;
  responseBytes: number;
  autoStart?: AutoStartReport;
}

/** A client exchange starts. Null (nothing built) when nobody subscribes. */
export function clientRequestStarted(path: string, request: string | Uint8Array, kind: ClientRequestMessage['kind']): ClientTrace | null {
  if (!clientRequestChannel.hasSubscribers && !clientResponseChannel.hasSubscribers) return null;
  const message: ClientRequestMessage = { path, requestBytes: byteLength(request), kind };
  if (clientRequestChannel.hasSubscribers) clientRequestChannel.publish(message);
  return { message, started: performance.now(), responseBytes: 0 };
}

export function clientResponseEnded(trace: ClientTrace, error: Error | null, response?: Uint8Array): void {
  if (!clientResponseChannel.hasSubscribers) return;
  const code = error === null ? null : (((error as { code?: unknown }).code as string | undefined) ?? null);
  const message: ClientResponseMessage = {
    ...trace.message,
    responseBytes: response === undefined ? trace.responseBytes : response.byteLength,
    durationMs: performance.now() - trace.started,
    code,
    error,
  };
  if (trace.autoStart !== undefined) message.autoStart = trace.autoStart;
  clientResponseChannel.publish(message);
}
