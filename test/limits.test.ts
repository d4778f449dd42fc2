// The server's limits (maxRequestBytes, requestTimeoutMs, maxConnections),
// each against a server in its own process.
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';

import { createServer, sendCommand } from '../dist/index.js';
import { onCleanup, socketPath, waitFor } from './helpers';
import { closedByPeer, encode, rawConnect } from './raw-peers';
import { startServerChild, type ServerChild } from './server-child';
import { handlersRunning } from './servers';

const sendbytes = (n: number) => Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(n - 10, 0x78)]);

/** The child's open connections, asked by signal (a request would be one more). */
async function openConnections(server: ServerChild): Promise<number> {
  const seen = server.count('serverstats');
  server.child.kill('SIGUSR2');
  await waitFor(() => server.count('serverstats') > seen, 10000, 'the server stats');
  const stats = server.events.filter((e) => e.event === 'serverstats').at(-1) as unknown as { connections: { open: number } };
  return stats.connections.open;
}

async function serverStats(path: string): Promise<{ fds: number; threads: number; rss: number }> {
  return JSON.parse((await sendCommand(path, 'stats')).toString());
}

describe('maxRequestBytes', () => {
  test('a request of exactly the limit is served; one byte more is dropped and reported', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { maxRequestBytes: 100000 });
    const ok = await sendCommand(path, sendbytes(100000));
    expect(ok.toString()).toBe(`rcvd:x${String(99990).padStart(8, '0')}\n`);

    await expect(sendCommand(path, sendbytes(100001))).rejects.toHaveProperty('code');
    const event = await server.waitEvent((e) => e.event === 'clientError', 10000, 'clientError');
    expect(event.code).toBe('ERR_IPC_REQUEST_TOO_LARGE');
    expect(server.count('handlerError')).toBe(0);
    // Still serving.
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
  });

  test('the default limit is 64 MiB', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    await expect(sendCommand(path, Buffer.alloc(64 * 1024 * 1024 + 1, 0x61))).rejects.toHaveProperty('code');
    const event = await server.waitEvent((e) => e.event === 'clientError', 10000, 'clientError');
    expect(event.code).toBe('ERR_IPC_REQUEST_TOO_LARGE');
  });

  test('Infinity lifts the limit', async () => {
    const path = socketPath();
    await startServerChild(path, { maxRequestBytes: 'Infinity' });
    const size = 64 * 1024 * 1024 + 100;
    const ok = await sendCommand(path, sendbytes(size));
    expect(ok.toString()).toBe(`rcvd:x${String(size - 10).padStart(8, '0')}\n`);
  });

  test('a client that keeps sending past the limit is cut off; server memory stays bounded', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { maxRequestBytes: 1024 * 1024 });
    const before = await serverStats(path);
    const packet = encode(Buffer.alloc(65516, 0x62)).subarray(0, 65520); // one full data packet, no flush
    let sent = 0;
    const socket = net.createConnection(path);
    const outcome = await new Promise<string>((resolve) => {
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      socket.on('close', () => resolve('close'));
      const pump = () => {
        // Up to 512 MiB; the server must hang up long before.
        while (sent < 512 * 1024 * 1024) {
          sent += packet.length;
          if (!socket.write(packet)) return void socket.once('drain', pump);
        }
        resolve('sent everything');
      };
      socket.on('connect', pump);
    });
    socket.destroy();
    expect(outcome).not.toBe('sent everything');
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    await server.waitEvent((e) => e.event === 'clientError' && e.code === 'ERR_IPC_REQUEST_TOO_LARGE', 10000);
    const after = await serverStats(path);
    expect(after.rss - before.rss).toBeLessThan(48 * 1024 * 1024);
  });
});

describe('requestTimeoutMs', () => {
  // docs/protocol.md#limits: the whole request within requestTimeoutMs of
  // the accept, however the bytes come (README: "sending a byte now and
  // then" is not enough). Each is dropped between the timeout and twice
  // it: a timeout five times too long, or a clock restarted by every
  // read, fails here.
  test('silent, half-sent and 1-byte-per-100-ms clients are each dropped between the timeout and twice it', async () => {
    const timeout = 500;
    const path = socketPath();
    const server = await startServerChild(path, { requestTimeoutMs: timeout });
    // Timed from before the connects: the server's clock starts at its accept, later.
    const started = performance.now();
    const [silent, partial, dribbling] = await Promise.all([rawConnect(path), rawConnect(path), rawConnect(path)]);
    partial.write('0010abc');
    const request = Buffer.from('fff0' + 'z'.repeat(100)); // 64 KiB announced, never all sent
    let sent = 0;
    const dribble = setInterval(() => {
      if (!dribbling.destroyed) dribbling.write(request.subarray(sent % request.length, (sent++ % request.length) + 1));
    }, 100);
    onCleanup(() => clearInterval(dribble));
    // Never dropped: Infinity after ten timeouts (rather than the test's own timeout).
    const droppedAfter = (socket: net.Socket) =>
      Promise.race([closedByPeer(socket).then(() => performance.now() - started), sleep(10 * timeout).then(() => Infinity)]);
    const dropped = await Promise.all([droppedAfter(silent), droppedAfter(partial), droppedAfter(dribbling)]);
    clearInterval(dribble);
    console.log(`dropped after [silent, half-sent, dribbling] ${dropped.map(Math.round).join(', ')} ms (timeout ${timeout} ms, ${sent} bytes dribbled)`);
    for (const ms of dropped) {
      // The server's clock counts whole milliseconds: its deadline can fall up to 1 ms early.
      expect(ms).toBeGreaterThan(timeout - 1);
      expect(ms).toBeLessThan(2 * timeout);
    }
    expect(sent).toBeGreaterThan(1); // the dribbler did send more than once before the drop
    await expect.poll(() => server.count('clientError', 'code', 'ERR_IPC_REQUEST_TIMEOUT'), { timeout: 10000 }).toBe(3);
    // A prompt client is unaffected.
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
  });

  test('0 disables the timeout', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { requestTimeoutMs: 0 });
    const partial = await rawConnect(path);
    partial.write('0010abc');
    let closed = false;
    void closedByPeer(partial).then(() => (closed = true));
    await sleep(1500);
    expect(closed).toBe(false);
    // Completing the request late still gets an answer.
    const answer = new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      partial.on('data', (d) => chunks.push(d));
      partial.on('close', () => resolve(Buffer.concat(chunks)));
    });
    partial.write('defghijkl0000');
    expect((await answer).toString()).toBe(encode('unhandled command: abcdefghijkl').toString());
    expect(server.count('clientError')).toBe(0);
  });
});

describe('maxConnections', () => {
  test('beyond the limit new connections are closed at once and reported', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { maxConnections: 5 });
    const idle = await Promise.all(Array.from({ length: 5 }, () => rawConnect(path)));
    // Connected is not yet accepted: the extra one must come after all five.
    await waitFor(async () => (await openConnections(server)) === 5, 10000, 'five accepted connections');
    const extra = await rawConnect(path);
    await closedByPeer(extra);
    const event = await server.waitEvent((e) => e.event === 'clientError', 10000);
    expect(event.code).toBe('ERR_IPC_TOO_MANY_CONNECTIONS');
    await expect(sendCommand(path, 'ping')).rejects.toHaveProperty('code');
    for (const s of idle) s.destroy();
    await expect
      .poll(async () => (await sendCommand(path, 'ping').catch(() => Buffer.from(''))).toString(), { timeout: 10000 })
      .toBe('pong');
  });
});

describe('clients that stop reading their response', () => {
  // 32 MiB: far more than the socket buffers hold.
  const big = Buffer.alloc(32 * 1024 * 1024, 0x6a);

  test('dropped after requestTimeoutMs; ctx.signal aborts with ERR_IPC_WRITE_STALLED', async () => {
    const path = socketPath();
    let reason: { code?: string } | undefined;
    const server = await createServer(
      path,
      (request, reply, ctx) => {
        if (request.toString() === 'ping') return 'pong';
        ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason as { code?: string }));
        void reply.write(big);
        return new Promise(() => {}); // keeps the conversation open
      },
      { requestTimeoutMs: 500 },
    );
    onCleanup(() => server.close({ force: true }));
    const reader = await rawConnect(path);
    reader.pause(); // never reads
    reader.write(encode('give me a lot'));
    await waitFor(() => reason !== undefined, 15000, 'ctx.signal to abort');
    expect(reason!.code).toBe('ERR_IPC_WRITE_STALLED');
    await closedByPeer(reader);
    expect((await sendCommand(path, 'ping', { timeoutMs: 10000 })).toString()).toBe('pong');
  });

  test('close() waits for them no longer than its timeout', async () => {
    const path = socketPath();
    const server = await createServer(path, () => big, { requestTimeoutMs: 0, closeTimeoutMs: 300 });
    const reader = await rawConnect(path);
    reader.pause();
    reader.write(encode('give me a lot'));
    await handlersRunning(server);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(10000);
    await closedByPeer(reader);
  });
});
