// Handlers and listeners that fail: throw, reject, return garbage, never
// resolve (then the server is closed), keep writing after the client left;
// an IpcServer event listener that throws. None of them may look like a
// complete response to the client, and none may disturb the server.
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, test } from 'vitest';

import { createServer, sendCommand, streamCommand, type Handler, type IpcError, type IpcServer } from '../../dist/index.js';
import { exited, fixtures, onCleanup, socketPath, spawnNode, waitFor } from '../helpers';
import { encode, rawExchange } from '../raw-peers';
import { handlersRunning } from '../servers';

async function serveAndRecord(handler: Handler, options: Record<string, unknown> = {}) {
  const path = socketPath();
  const server: IpcServer = await createServer(path, handler, options);
  onCleanup(() => server.close({ force: true }));
  const handlerErrors: unknown[] = [];
  const clientErrors: unknown[] = [];
  server.on('handlerError', (error) => handlerErrors.push(error));
  server.on('clientError', (error) => clientErrors.push(error));
  return { path, server, handlerErrors, clientErrors };
}

const script = path.join(fixtures, 'throwing-listener.js');

// [what the handler does, what it wrote before failing, whether it threw 'boom']
const failingHandlers: Array<[string, Handler, string, boolean]> = [
  ['throws', () => {
    throw new Error('boom');
  }, '', true],
  ['rejects', async () => {
    await sleep(5);
    throw new Error('boom');
  }, '', true],
  ['returns something that is not a response', () => 42 as unknown as string, '', false],
  ['writes part of the response, then rejects', async (_request, reply) => {
    await reply.write('partial');
    throw new Error('boom');
  }, 'partial', true],
];

// How a client leaves a handler that has not finished: [when, the request,
// leaving, the code of ctx.signal.reason]. The server learns it from a read
// (reset) while the handler waits, and from a failed write while it writes,
// or from a read if that comes first.
const clientsLeaving: Array<[string, string, (server: IpcServer, request: string) => Promise<void>, RegExp]> = [
  [
    'after the first chunk, while the handler waits',
    'first',
    async (server, request) => {
      const stream = streamCommand(server.path, request);
      expect((await stream.next()).value!.toString()).toBe('first');
      await stream.return!();
    },
    /^ECONNRESET$/,
  ],
  [
    'mid-response, while the handler writes 64 KiB chunks as fast as it can',
    'flood',
    async (server, request) => {
      let received = 0;
      for await (const c of streamCommand(server.path, request)) {
        received += c.length;
        if (received > 256 * 1024) break; // leaves: cancels the exchange
      }
    },
    /^(EPIPE|ECONNRESET)$/,
  ],
  [
    'before any response, by aborting sendCommand() once the handler runs',
    'silent',
    async (server, request) => {
      const controller = new AbortController();
      const pending = sendCommand(server.path, request, { signal: controller.signal });
      pending.catch(() => {}); // awaited below; if the wait fails first, no unhandled rejection
      await handlersRunning(server);
      controller.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    },
    /^ECONNRESET$/,
  ],
];

describe('failing handlers', () => {
  it.each(failingHandlers)('a handler that %s: never a complete response, a handlerError, the server goes on', async (_name, bad, written, threw) => {
    const s = await serveAndRecord((request, reply, ctx) => (request.toString() === 'ping' ? 'pong' : bad(request, reply, ctx)));
    await expect(sendCommand(s.path, 'bad')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    // Streamed: what was written before the failure, then the same error.
    const chunks: string[] = [];
    await expect(
      (async () => {
        for await (const c of streamCommand(s.path, 'bad')) chunks.push(c.toString());
      })(),
    ).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(chunks.join('')).toBe(written);
    // On the wire: no flush, so no complete response.
    const wire = await rawExchange(s.path, encode('bad'));
    expect(wire.toString().endsWith('0000')).toBe(false);
    await waitFor(() => s.handlerErrors.length === 3, 5000, 'three handlerErrors');
    if (threw) expect(s.handlerErrors.map((e) => (e as Error).message)).toEqual(['boom', 'boom', 'boom']);
    expect((await sendCommand(s.path, 'ping')).toString()).toBe('pong');
    expect(s.handlerErrors).toHaveLength(3);
  });

  test('a handler that never resolves: close() drops it after its timeout; the client gets an error', async () => {
    let signal: AbortSignal | undefined;
    const s = await serveAndRecord((_request, _reply, ctx) => {
      signal = ctx.signal;
      return new Promise(() => {});
    });
    const outcome = sendCommand(s.path, 'hang').catch((error: unknown) => error);
    await waitFor(() => signal !== undefined);
    const started = Date.now();
    await s.server.close({ timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(10000);
    expect(await outcome).toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(signal!.aborted).toBe(true);
    expect((signal!.reason as { code?: string }).code).toBe('ERR_IPC_SERVER_CLOSED');
    expect(await s.server.closed).toBe('closed');
    expect(s.handlerErrors).toHaveLength(0);
  });

  test('closeTimeoutMs is the default grace of close()', async () => {
    let handled = false;
    const s = await serveAndRecord(() => {
      handled = true;
      return new Promise(() => {});
    }, { closeTimeoutMs: 300 });
    const outcome = sendCommand(s.path, 'hang').catch((error: unknown) => error);
    await waitFor(() => handled, 10000, 'the handler to run');
    const started = Date.now();
    await s.server.close();
    expect(Date.now() - started).toBeLessThan(10000);
    expect(await outcome).toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
  });

  it.each(clientsLeaving)('a client that leaves %s: ctx.signal aborts, later writes are harmless, nothing is reported', async (_when, command, leave, code) => {
    let reason: unknown;
    let writesAfterAbort = 0;
    let finished = false;
    const s = await serveAndRecord(async (request, reply, ctx) => {
      if (request.toString() === 'ping') return 'pong';
      const aborted = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason)));
      const chunk = Buffer.alloc(64 * 1024, 0x71);
      if (request.toString() === 'first') await reply.write('first');
      const until = Date.now() + 20000;
      if (request.toString() === 'flood') while (!ctx.signal.aborted && Date.now() < until) await reply.write(chunk);
      reason = await aborted;
      // The client is gone: writing more neither throws nor rejects.
      for (let i = 0; i < 10; i++) {
        await reply.write(chunk);
        writesAfterAbort++;
      }
      finished = true;
      return 'the end nobody reads';
    });
    await leave(s.server, command);
    await waitFor(() => finished, 20000, 'handler to finish');
    expect((reason as IpcError).code).toMatch(code);
    expect(writesAfterAbort).toBe(10);
    // The conversation is over for the server too: whatever it had to report, it has.
    await waitFor(() => s.server.stats().connections.beingAnswered === 0, 10000, 'the conversation to end');
    expect(s.handlerErrors).toHaveLength(0);
    expect(s.clientErrors).toHaveLength(0);
    expect((await sendCommand(s.path, 'ping')).toString()).toBe('pong');
  });

  test('reply.write() after the handler finished throws ERR_IPC_REPLY_ENDED', async () => {
    let later: (() => Promise<void>) | undefined;
    const s = await serveAndRecord((_request, reply) => {
      later = () => reply.write('too late');
      return 'done';
    });
    expect((await sendCommand(s.path, 'x')).toString()).toBe('done');
    expect(() => later!()).toThrow(expect.objectContaining({ code: 'ERR_IPC_REPLY_ENDED' }));
    expect(s.handlerErrors).toHaveLength(0);
  });
});

// An exception thrown by an IpcServer event listener behaves as it does for
// any EventEmitter in Node's core: an uncaught exception, which
// 'uncaughtException' sees and which by default ends the process.
describe.each(['clientError', 'handlerError', 'close'])('a throwing %s listener', (event) => {
  it("reaches process.on('uncaughtException')", async () => {
    const child = spawnNode(script, [socketPath(), event, 'handle']);
    expect(await exited(child)).toBe(42);
    expect(child.output()).toContain(`caught: thrown by a ${event} listener`);
    expect(child.output()).not.toContain('still running');
  }, 20000);

  it('ends the process by default, with the error on stderr', async () => {
    const child = spawnNode(script, [socketPath(), event, 'crash']);
    const code = await exited(child);
    expect(code).not.toBe(0);
    expect(child.output()).toContain(`thrown by a ${event} listener`);
    expect(child.output()).not.toContain('still running');
  }, 20000);
});
