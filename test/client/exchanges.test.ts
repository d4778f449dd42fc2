// A client exchange (docs/protocol.md#client): cancellation and timeouts,
// no use of libuv's thread pool, connect() then a later send(), and the
// synchronous client.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { connect, sendCommand, sendCommandSync, streamCommand } from '../../dist/index.js';
import { fixtures, onCleanup, socketPath, spawnNode, waitFor, waitForLine } from '../helpers';
import { clientErrorMarker, handlersRunning, serve } from '../servers';

describe('cancellation and timeouts', () => {
  const hang = () => new Promise<never>(() => {});

  it('timeoutMs ends an exchange the server never answers with ERR_IPC_TIMEOUT', async () => {
    const p = socketPath();
    await serve(p, hang);
    const started = Date.now();
    await expect(sendCommand(p, 'x', { timeoutMs: 200 })).rejects.toMatchObject({ code: 'ERR_IPC_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('an AbortSignal cancels a pending exchange with an AbortError', async () => {
    const p = socketPath();
    const server = await serve(p, hang);
    const controller = new AbortController();
    const pending = sendCommand(p, 'x', { signal: controller.signal });
    pending.catch(() => {}); // awaited below; if the wait fails first, no unhandled rejection
    await handlersRunning(server); // pending: sent, and waiting for the answer
    controller.abort(new Error('enough'));
    await expect(pending).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('an aborted signal rejects at once', async () => {
    await expect(sendCommand(socketPath(), 'x', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    const stream = streamCommand(socketPath(), 'x', { signal: AbortSignal.abort() });
    await expect(stream.next()).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('aborting a stream mid-response ends the iteration with an AbortError', async () => {
    const p = socketPath();
    await serve(p, async (_r, reply) => {
      await reply.write('one');
      await hang();
    });
    const controller = new AbortController();
    const seen: string[] = [];
    const consume = async () => {
      for await (const chunk of streamCommand(p, 'x', { signal: controller.signal })) {
        seen.push(chunk.toString());
        controller.abort();
      }
    };
    await expect(consume()).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['one']);
  });

  it('timeoutMs also applies to the sync client', async () => {
    const p = socketPath();
    const child = spawnNode(path.join(fixtures, 'hang-server.js'), [p]);
    await waitForLine(child, /listening/);
    const started = Date.now();
    expect(() => sendCommandSync(p, 'x', { timeoutMs: 200 })).toThrow(expect.objectContaining({ code: 'ERR_IPC_TIMEOUT' }));
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('the async client does not use libuv\'s thread pool', () => {
  it('200 exchanges in flight leave fs work unhindered', async () => {
    const p = socketPath();
    const server = await serve(p, () => new Promise<never>(() => {}), { threads: 2 });
    const controller = new AbortController();
    const inFlight = Array.from({ length: 200 }, () => sendCommand(p, 'x', { signal: controller.signal }).catch((e: Error) => e));
    await handlersRunning(server, 200, 30000);
    // With 4 pool threads taken by blocked exchanges this would never end.
    const started = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => fs.promises.readFile(__filename)));
    expect(Date.now() - started).toBeLessThan(5000);
    controller.abort();
    const results = await Promise.all(inFlight);
    expect(results.every((r) => (r as { code?: string }).code === 'ABORT_ERR')).toBe(true);
  });
});

describe('connect() then send()', () => {
  it('connects first and sends one request later', async () => {
    const p = socketPath();
    await serve(p);
    const connection = await connect(p);
    expect((await connection.send('ping')).toString()).toBe('pong');
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_CONNECTION_USED' });
  });

  it('rejects like sendCommand when nothing listens', async () => {
    await expect(connect(socketPath())).rejects.toMatchObject({ code: 'ENOENT', state: 'path-not-found' });
  });

  it('close() without sending is a silent probe for the server', async () => {
    const p = socketPath();
    const server = await serve(p, undefined, { threads: 1 });
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    const connection = await connect(p);
    connection.close();
    expect(errors).toEqual([await clientErrorMarker(server, p)]);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});

// A listener that notes when the client closes a connection it accepted.
async function watchedListener(p: string): Promise<{ path: string; closed: () => number }> {
  let closed = 0;
  const listener = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.on('close', () => closed++);
    socket.resume();
  });
  await new Promise<void>((resolve) => listener.listen(p, resolve));
  onCleanup(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  return { path: p, closed: () => closed };
}

// Until the native client has closed the idle connection and JS has heard
// why: the listener saw the close, and an exchange started after it has
// completed (one client I/O thread: its completion comes back after the
// closed connection's).
async function closedNatively(watched: { closed: () => number }): Promise<void> {
  await waitFor(() => watched.closed() === 1, 10000, 'the native client to close the connection');
  const p = socketPath();
  await serve(p);
  expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
}

describe('connect() then a late send()', () => {
  it('rejects with ABORT_ERR when the signal aborted before send()', async () => {
    const p = socketPath();
    await serve(p);
    const controller = new AbortController();
    const connection = await connect(p, { signal: controller.signal });
    controller.abort();
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError' });
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_CONNECTION_USED' });
  });

  it('rejects with ABORT_ERR when the abort was already handled natively', async () => {
    const watched = await watchedListener(socketPath());
    const controller = new AbortController();
    const connection = await connect(watched.path, { signal: controller.signal });
    controller.abort();
    await closedNatively(watched);
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError' });
  });

  it('rejects with ERR_IPC_TIMEOUT when timeoutMs ran out before send()', async () => {
    const watched = await watchedListener(socketPath());
    const connection = await connect(watched.path, { timeoutMs: 100 });
    await closedNatively(watched);
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_TIMEOUT' });
  });

  it('after close(), send() says the connection is used', async () => {
    const p = socketPath();
    await serve(p);
    const connection = await connect(p);
    connection.close();
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_CONNECTION_USED' });
  });

  it('await using closes an unused connection (Symbol.asyncDispose), a silent probe', async () => {
    const p = socketPath();
    const server = await serve(p, undefined, { threads: 1 });
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    let kept: Awaited<ReturnType<typeof connect>> | undefined;
    {
      const connection = await connect(p);
      kept = connection;
      await connection[Symbol.asyncDispose]();
    }
    await expect(kept.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_CONNECTION_USED' });
    expect(errors).toEqual([await clientErrorMarker(server, p)]);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});

describe('the synchronous client', () => {
  it('talks to a server in another process', async () => {
    const p = socketPath();
    const child = spawnNode(path.join(fixtures, 'app-server.js'), [p]);
    await waitForLine(child, /listening/);
    expect(sendCommandSync(p, 'ping').toString()).toBe('pong');
    expect(sendCommandSync(p, 'big').length).toBe(10000 * 81);
    const ballast = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(300000, 'z')]);
    expect(sendCommandSync(p, ballast).toString()).toBe('rcvd:z00300000\n');
    expect(sendCommandSync(p, '').toString()).toBe('unhandled command: ');
  });

  it('throws connect errors like the async client', () => {
    const p = socketPath();
    expect(() => sendCommandSync(p, 'ping')).toThrow(expect.objectContaining({ code: 'ENOENT', state: 'path-not-found' }));
  });

  it('works in a process of its own (CLI-style)', () => {
    const p = socketPath();
    const script = `const {sendCommandSync}=require(${JSON.stringify(path.resolve('dist/index.js'))});` + `try{sendCommandSync(${JSON.stringify(p)},'ping')}catch(e){console.log(e.code)}`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(result.stdout.trim()).toBe('ENOENT');
  });
});
