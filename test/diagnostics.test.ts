// What a server reports about itself: node:diagnostics_channel events of
// the server and the client, seen by real subscribers while real requests
// go over real sockets, and the counters of server.stats().
import { AsyncLocalStorage } from 'node:async_hooks';
import * as dc from 'node:diagnostics_channel';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { QUIT, sendCommand, sendCommandSync, streamCommand } from '../dist/index.js';
import { fixtures, onCleanup, posix, socketPath, spawnNode, waitFor, waitForLine } from './helpers.js';
import { handlersRunning, hangingServer, inProcessServer as serve } from './servers.js';

type Message = Record<string, unknown>;

/** Collects what `name` publishes until the end of the test. */
function subscribe(name: string): Message[] {
  const seen: Message[] = [];
  const listener = (message: unknown) => seen.push({ ...(message as Message) });
  dc.subscribe(name, listener);
  onCleanup(() => dc.unsubscribe(name, listener));
  return seen;
}

describe('diagnostics_channel', () => {
  it('server and client publish request and response with sizes, duration and outcome', async () => {
    const serverRequests = subscribe('simple-ipc:server:request');
    const serverResponses = subscribe('simple-ipc:server:response');
    const clientRequests = subscribe('simple-ipc:client:request');
    const clientResponses = subscribe('simple-ipc:client:response');
    const p = socketPath();
    // The handler takes at least 30 ms: the durations must show it.
    const server = await serve(p, async (request, reply) => {
      await reply.write('ab');
      await new Promise((resolve) => setTimeout(resolve, 30));
      return Buffer.concat([request, Buffer.from('!')]);
    });

    const sentAt = performance.now();
    expect((await sendCommand(p, 'hello')).toString()).toBe('abhello!');
    const clientTook = performance.now() - sentAt;

    expect(clientRequests).toEqual([{ path: p, requestBytes: 5, kind: 'send' }]);
    expect(clientResponses).toEqual([
      { path: p, requestBytes: 5, kind: 'send', responseBytes: 8, durationMs: expect.any(Number), code: null, error: null },
    ]);
    await waitFor(() => serverResponses.length === 1, 5000, 'the server response event');
    expect(serverRequests).toEqual([{ path: server.path, id: expect.any(Number), peer: expect.objectContaining({ pid: process.pid }), requestBytes: 5 }]);
    expect(serverResponses[0]).toEqual({ ...serverRequests[0], outcome: 'ok', responseBytes: 8, durationMs: expect.any(Number) });
    // Each side's duration covers the handler's 30 ms (a timer may fire up
    // to 1 ms early) and no more than this test saw pass.
    const serverTook = serverResponses[0]!.durationMs as number;
    const clientSaw = clientResponses[0]!.durationMs as number;
    expect(serverTook).toBeGreaterThanOrEqual(29);
    expect(serverTook).toBeLessThanOrEqual(performance.now() - sentAt);
    expect(clientSaw).toBeGreaterThanOrEqual(29);
    expect(clientSaw).toBeLessThanOrEqual(clientTook);
  });

  it('reports a handler error, a client that left, and a quit', async () => {
    const serverRequests = subscribe('simple-ipc:server:request');
    const serverResponses = subscribe('simple-ipc:server:response');
    const clientResponses = subscribe('simple-ipc:client:response');
    const p = socketPath();
    await serve(p, async (request, _reply, ctx) => {
      const text = request.toString();
      if (text === 'fail') throw new Error('boom');
      if (text === 'quit') return QUIT;
      // 'wait': until the client goes away.
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      return 'late';
    });

    await expect(sendCommand(p, 'fail')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    await waitFor(() => serverResponses.length === 1, 5000, 'handler-error event');
    expect(serverResponses[0]).toMatchObject({ outcome: 'handler-error', error: expect.objectContaining({ message: 'boom' }) });
    expect(clientResponses[0]).toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE', responseBytes: 0 });

    const controller = new AbortController();
    const waiting = sendCommand(p, 'wait', { signal: controller.signal });
    // Leave once the handler runs.
    await waitFor(() => serverRequests.length === 2, 5000, 'the second request');
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORT_ERR' });
    await waitFor(() => serverResponses.length === 2, 5000, 'client-gone event');
    expect(serverResponses[1]).toMatchObject({ outcome: 'client-gone', requestBytes: 4 });
    expect(clientResponses[1]).toMatchObject({ code: 'ABORT_ERR' });

    expect((await sendCommand(p, 'quit')).length).toBe(0);
    await waitFor(() => serverResponses.length === 3, 5000, 'quit event');
    expect(serverResponses[2]).toMatchObject({ outcome: 'quit', responseBytes: 0 });
  });

  it('reports connect failures with their code, and streamed responses with their size', async () => {
    const clientResponses = subscribe('simple-ipc:client:response');
    const missing = path.join(path.dirname(socketPath()), 'nobody.ipc');
    await expect(sendCommand(missing, 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(clientResponses[0]).toMatchObject({ path: missing, kind: 'send', code: 'ENOENT', error: expect.objectContaining({ code: 'ENOENT' }) });

    const p = socketPath();
    await serve(p, async (_request, reply) => {
      for (let i = 0; i < 3; i++) await reply.write('x'.repeat(1000));
    });
    let total = 0;
    for await (const chunk of streamCommand(p, 'go')) total += chunk.length;
    expect(total).toBe(3000);
    expect(clientResponses[1]).toMatchObject({ kind: 'stream', requestBytes: 2, responseBytes: 3000, code: null });
  });

  it('reports the synchronous client', async () => {
    const clientResponses = subscribe('simple-ipc:client:response');
    const p = socketPath();
    const child = spawnNode(path.join(fixtures, 'app-server.js'), [p, '2']);
    await waitForLine(child, /^listening/);
    expect(sendCommandSync(p, 'ping').toString()).toBe('pong');
    expect(clientResponses).toEqual([
      { path: p, requestBytes: 4, kind: 'sync', responseBytes: 4, durationMs: expect.any(Number), code: null, error: null },
    ]);
    sendCommandSync(p, 'quit');
  });

  it('runs the handler inside the simple-ipc:server:handler tracing channel (a bound store is its context)', async () => {
    const store = new AsyncLocalStorage<string>();
    const tracing = dc.tracingChannel('simple-ipc:server:handler');
    tracing.start.bindStore(store, (context) => `span for request ${(context as { id: number }).id}`);
    const events: string[] = [];
    const handlers = {
      start: () => events.push('start'),
      end: () => events.push('end'),
      asyncStart: () => events.push('asyncStart'),
      asyncEnd: () => events.push('asyncEnd'),
      error: () => events.push('error'),
    };
    tracing.subscribe(handlers);
    onCleanup(() => {
      tracing.unsubscribe(handlers);
      tracing.start.unbindStore(store);
    });
    const p = socketPath();
    await serve(p, async () => {
      await new Promise((r) => setTimeout(r, 10));
      return store.getStore() ?? 'no context';
    });
    expect((await sendCommand(p, 'x')).toString()).toMatch(/^span for request \d+$/);
    await waitFor(() => events.length === 4, 5000, 'asyncEnd');
    expect(events).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
  });
});

describe.runIf(posix)('stats()', () => {
  it('counts requests, bytes, drops and open connections', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { maxRequestBytes: 100 });
    for (let i = 0; i < 10; i++) await sendCommand(p, 'ping');
    await expect(sendCommand(p, 'x'.repeat(200))).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    const hanging = sendCommand(p, 'hang').catch(() => undefined);
    await handlersRunning(server);
    const stats = server.stats();
    expect(stats.requests).toBe(10);
    expect(stats.dropped).toEqual({ protocol: 0, tooLarge: 1, timeout: 0, tooManyConnections: 0 });
    expect(stats.bytesOut).toBe(10 * 12); // "0008pong0000"
    expect(stats.bytesIn).toBeGreaterThanOrEqual(10 * 12);
    expect(stats.connections).toEqual({ open: 1, sending: 0, awaitingAllowPeer: 0, beingAnswered: 1 });
    expect(stats.handlerErrors).toBe(0);
    expect(stats.uptimeMs).toBeGreaterThan(0);
    await server.close({ force: true });
    await hanging;
    const final = server.stats();
    expect(final.requests).toBe(10);
    expect(final.connections.open).toBe(0);
  }, 20000);
});
