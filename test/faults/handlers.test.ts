// Handlers and listeners that fail: throw, reject, return garbage, never
// resolve (then the server is closed), keep writing after the client left;
// an IpcServer event listener that throws. None of them may look like a
// complete response to the client, and none may disturb the server.
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, test } from 'vitest';

import { createServer, sendCommand, streamCommand, type Handler, type IpcError, type IpcServer } from '../../dist/index.js';
import { testAppHandler } from '../../dist/test-app.js';
import { exited, fixtures, onCleanup, socketPath, spawnNode, waitFor } from '../helpers';
import { encode, rawExchange } from '../raw-peers';
import { serve } from '../servers';

async function serveAndRecord(handler: Handler, options: Record<string, unknown> = {}) {
  const path = socketPath();
  const server: IpcServer = await createServer(path, handler, options);
  onCleanup(() => server.close({ timeoutMs: 0 }));
  const handlerErrors: unknown[] = [];
  const clientErrors: unknown[] = [];
  server.on('handlerError', (error) => handlerErrors.push(error));
  server.on('clientError', (error) => clientErrors.push(error));
  return { path, server, handlerErrors, clientErrors };
}

const script = path.join(fixtures, 'throwing-listener.js');

describe('handler failures', () => {
  it.each([
    ['throws', () => {
      throw new Error('boom');
    }],
    ['rejects', async () => {
      await sleep(5);
      throw new Error('boom');
    }],
    ['returns a bad value', () => 42 as unknown as string],
    ['writes, then throws', async (_r: Buffer, reply: { write(c: string): Promise<void> }) => {
      await reply.write('partial');
      throw new Error('boom');
    }],
  ])('a handler that %s: the client gets ERR_IPC_INCOMPLETE_RESPONSE, others are served', async (_name, bad) => {
    const p = socketPath();
    const server = await serve(p, (request, reply, ctx) =>
      request.toString() === 'bad' ? (bad as typeof testAppHandler)(request, reply, ctx) : 'pong',
    );
    const failures: unknown[] = [];
    server.on('handlerError', (e) => failures.push(e));
    await expect(sendCommand(p, 'bad')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    // On the wire: no flush, so no complete response.
    const wire = await rawExchange(p, encode('bad'));
    expect(wire.toString().endsWith('0000')).toBe(false);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    expect(failures.length).toBe(2);
  });

  it('the handler learns through ctx.signal that its client left, and writes after that do no harm', async () => {
    const p = socketPath();
    let aborted: Promise<unknown> | undefined;
    let writesAfter = 0;
    await serve(p, async (request, reply, ctx) => {
      if (request.toString() !== 'long') return 'pong';
      aborted = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason)));
      await reply.write('first');
      await aborted;
      for (let i = 0; i < 10; i++) {
        await reply.write('more');
        writesAfter++;
      }
      return 'never seen';
    });
    const controller = new AbortController();
    const stream = streamCommand(p, 'long', { signal: controller.signal });
    const first = await stream.next();
    expect(first.value!.toString()).toBe('first');
    await stream.return!();
    await waitFor(() => aborted !== undefined, 5000);
    const reason = (await aborted) as IpcError;
    expect(reason.code).toBe('ECONNRESET');
    await waitFor(() => writesAfter === 10, 5000, 'handler to finish');
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});

describe('failing handlers', () => {
  test('a handler that throws: incomplete response, handlerError, server goes on', async () => {
    const s = await serveAndRecord((request) => {
      if (request.toString() === 'ping') return 'pong';
      throw new Error('boom');
    });
    await expect(sendCommand(s.path, 'explode')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    await waitFor(() => s.handlerErrors.length === 1);
    expect((s.handlerErrors[0] as Error).message).toBe('boom');
    expect((await sendCommand(s.path, 'ping')).toString()).toBe('pong');
  });

  test('a handler that rejects after writing part of the response: never a partial success', async () => {
    const s = await serveAndRecord(async (request, reply) => {
      if (request.toString() === 'ping') return 'pong';
      await reply.write('first half');
      throw new Error('rejected');
    });
    await expect(sendCommand(s.path, 'go')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    const chunks: string[] = [];
    await expect(
      (async () => {
        for await (const c of streamCommand(s.path, 'go')) chunks.push(c.toString());
      })(),
    ).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(chunks.join('')).toBe('first half');
    await waitFor(() => s.handlerErrors.length === 2);
    expect((await sendCommand(s.path, 'ping')).toString()).toBe('pong');
  });

  test('a handler that returns something that is not a response is a handler error', async () => {
    const s = await serveAndRecord(() => 42 as unknown as string);
    await expect(sendCommand(s.path, 'x')).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    await waitFor(() => s.handlerErrors.length === 1);
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

  test('a client that leaves mid-response: ctx.signal aborts, later writes are harmless, nothing is reported', async () => {
    let aborted = false;
    let writesAfterAbort = 0;
    let finished = false;
    const s = await serveAndRecord(async (request, reply, ctx) => {
      if (request.toString() === 'ping') return 'pong';
      ctx.signal.addEventListener('abort', () => (aborted = true));
      const chunk = Buffer.alloc(64 * 1024, 0x71);
      const until = Date.now() + 20000;
      while (!ctx.signal.aborted && Date.now() < until) await reply.write(chunk);
      // The client is gone: writing more neither throws nor rejects.
      for (let i = 0; i < 5; i++) {
        await reply.write(chunk);
        writesAfterAbort++;
      }
      finished = true;
      return 'the end nobody reads';
    });
    let received = 0;
    for await (const c of streamCommand(s.path, 'stream')) {
      received += c.length;
      if (received > 256 * 1024) break; // leaves: cancels the exchange
    }
    await waitFor(() => finished, 20000, 'handler to finish');
    expect(aborted).toBe(true);
    expect(writesAfterAbort).toBe(5);
    expect(s.handlerErrors).toHaveLength(0);
    expect(s.clientErrors).toHaveLength(0);
    expect((await sendCommand(s.path, 'ping')).toString()).toBe('pong');
  });

  test('a client that leaves while the handler has not answered yet: ctx.signal aborts', async () => {
    let signal: AbortSignal | undefined;
    const s = await serveAndRecord((_request, _reply, ctx) => {
      signal = ctx.signal;
      return new Promise((resolve) => setTimeout(() => resolve('late'), 1000));
    });
    const controller = new AbortController();
    const pending = sendCommand(s.path, 'x', { signal: controller.signal });
    pending.catch(() => {}); // awaited below; if the wait fails first, no unhandled rejection
    await waitFor(() => signal !== undefined);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await waitFor(() => signal!.aborted, 10000, 'ctx.signal to abort');
    await new Promise((r) => setTimeout(r, 1100));
    expect(s.handlerErrors).toHaveLength(0);
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
