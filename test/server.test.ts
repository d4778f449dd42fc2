// The server (docs/protocol.md#the-server): start rules, serving, QUIT, stolen path, stop.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { createServer, getActiveState, QUIT, sendCommand, streamCommand, type IpcError, type IpcServer } from '../dist/index.js';
import { bigRow, testAppHandler } from '../dist/test-app.js';
import { onCleanup, socketPath, tempDir, waitFor } from './helpers';
import { encode, rawConnection, rawExchange } from './raw-peers';

async function serve(p: string, handler = testAppHandler, options: Parameters<typeof createServer>[2] = {}): Promise<IpcServer> {
  const server = await createServer(p, handler, options);
  onCleanup(() => server.close({ timeoutMs: 0 }));
  return server;
}

function filled(size: number, byte = 0x41): Buffer {
  return Buffer.alloc(size, byte);
}

describe('requests and responses', () => {
  it.each([0, 1, 65516, 65517, 10 * 1024 * 1024])('echoes a %d-byte request intact', async (size) => {
    const p = socketPath();
    await serve(p, (request) => request);
    const request = Buffer.alloc(size);
    for (let i = 0; i < size; i++) request[i] = (i * 7 + 3) & 0xff;
    const response = await sendCommand(p, request);
    expect(response.length).toBe(size);
    expect(response.equals(request)).toBe(true);
  });

  it('runs the test application: ping, big, chunk, sendbytes, unknown', async () => {
    const p = socketPath();
    await serve(p);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    const rows = Array.from({ length: 10000 }, (_, i) => bigRow(i)).join('');
    expect((await sendCommand(p, 'big')).toString()).toBe(rows);
    expect((await sendCommand(p, 'chunk')).toString()).toBe(rows);
    expect((await sendCommand(p, Buffer.concat([Buffer.from('sendbytes '), filled(100000)]))).toString()).toBe('rcvd:A00100000\n');
    const mixed = Buffer.concat([Buffer.from('sendbytes '), filled(10), Buffer.from('BB')]);
    expect((await sendCommand(p, mixed)).toString()).toBe('errs:2\n');
    expect((await sendCommand(p, 'hello')).toString()).toBe('unhandled command: hello');
  });

  it('streams a slow reply: chunks arrive before the reply ends', async () => {
    const p = socketPath();
    let finished = false;
    await serve(p, async (_request, reply) => {
      for (let i = 0; i < 5; i++) {
        await reply.write(`row ${i}\n`);
        await sleep(40);
      }
      finished = true;
    });
    const seen: Array<[string, boolean]> = [];
    for await (const chunk of streamCommand(p, 'x')) seen.push([chunk.toString(), finished]);
    expect(seen.map(([c]) => c).join('')).toBe('row 0\nrow 1\nrow 2\nrow 3\nrow 4\n');
    // The first chunks were seen while the handler was still running.
    expect(seen[0]![1]).toBe(false);
    expect(seen.length).toBeGreaterThanOrEqual(3);
  });

  it('streams the slow test command (1000 rows, 10 ms apart) in many chunks', async () => {
    const p = socketPath();
    await serve(p);
    let text = '';
    let chunks = 0;
    for await (const chunk of streamCommand(p, 'slow')) {
      text += chunk.toString();
      chunks++;
    }
    expect(text).toBe(Array.from({ length: 1000 }, (_, i) => bigRow(i)).join(''));
    expect(chunks).toBeGreaterThan(100);
  }, 60000);

  it('serves 8 threads x 500 concurrent requests, all answered correctly', async () => {
    const p = socketPath();
    await serve(p, (request) => Buffer.concat([Buffer.from('re:'), request]), { threads: 8 });
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        let ok = 0;
        for (let i = 0; i < 500; i++) {
          const body = `${k}-${i}-${'x'.repeat((i * 13) % 2000)}`;
          if ((await sendCommand(p, body)).toString() === `re:${body}`) ok++;
        }
        return ok;
      }),
    );
    expect(results).toEqual(Array(8).fill(500));
  }, 120000);

  it('answers 500 requests issued at once', async () => {
    const p = socketPath();
    await serve(p, (request) => request, { threads: 4 });
    const responses = await Promise.all(Array.from({ length: 500 }, (_, i) => sendCommand(p, `n${i}`)));
    expect(responses.map((r) => r.toString())).toEqual(Array.from({ length: 500 }, (_, i) => `n${i}`));
  }, 60000);

  it('gives the handler the peer pid, uid and gid', async () => {
    const p = socketPath();
    let peer: unknown;
    await serve(p, (_request, _reply, ctx) => {
      peer = ctx.peer;
      return 'ok';
    });
    await sendCommand(p, 'x');
    expect(peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  });
});

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

describe('large chunks sent from their own memory', () => {
  it('written and returned chunks of 64 KiB and more arrive intact, in order', async () => {
    const p = socketPath();
    const parts = [200000, 65536, 3, 1 << 20].map((n, k) => Buffer.alloc(n, 0x61 + k));
    await serve(p, async (_r, reply) => {
      await reply.write(parts[0]!);
      void reply.write(parts[1]!); // not awaited: queued behind the first
      await reply.write(parts[2]!);
      return parts[3]!;
    });
    const response = await sendCommand(p, 'x');
    expect(response.equals(Buffer.concat(parts))).toBe(true);
  });

  it('a client that leaves mid-response: the dropped chunks are released and the server serves on', async () => {
    const p = socketPath();
    let writesDone = 0;
    const server = await serve(p, async (request, reply, ctx) => {
      if (request.toString() === 'ping') return 'pong';
      const pending: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) pending.push(reply.write(Buffer.alloc(1 << 20, 0x30 + (i % 10))));
      await Promise.all(pending); // resolves, written or dropped
      writesDone++;
      expect(ctx.signal.aborted).toBe(true);
    });
    const stream = streamCommand(p, 'many');
    await stream.next();
    await stream.return!();
    await waitFor(() => writesDone === 1, 10000, 'the handler to see its writes settle');
    const pinned = (server as unknown as { pinned: Map<number, Uint8Array> }).pinned;
    await waitFor(() => pinned.size === 0, 5000, 'every borrowed chunk to be released');
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});

describe('QUIT', () => {
  it('answers with the bare flush, finishes running conversations, stops and removes the socket', async () => {
    const p = socketPath();
    const server = await createServer(
      p,
      async (request, reply) => {
        if (request.toString() === 'quit') return QUIT;
        for (let row = 0; row < 50; row++) {
          await reply.write(bigRow(row));
          await sleep(10);
        }
      },
      { threads: 2 },
    );
    const slow = (async () => {
      let rows = 0;
      for await (const chunk of streamCommand(p, 'slow')) rows += chunk.toString().split('\n').length - 1;
      return rows;
    })();
    slow.catch(() => {}); // awaited below; if the quit exchange fails first, no unhandled rejection
    await sleep(100);
    expect((await rawExchange(p, encode('quit'))).toString()).toBe('0000');
    expect(await server.closed).toBe('quit');
    expect(await slow).toBe(50); // the conversation in progress was finished
    expect(fs.existsSync(p)).toBe(false);
    expect(await getActiveState(p)).toBe('not-listening');
  }, 30000);

  it('a handler may return QUIT after writing', async () => {
    const p = socketPath();
    const server = await createServer(p, async (_r, reply) => {
      await reply.write('bye');
      return QUIT;
    });
    expect((await sendCommand(p, 'x')).toString()).toBe('bye');
    expect(await server.closed).toBe('quit');
  });
});

describe('starting', () => {
  it('a second server on a live path fails with EADDRINUSE and the first keeps serving', async () => {
    const p = socketPath();
    const first = await serve(p);
    await expect(createServer(p, () => 'second')).rejects.toMatchObject({ code: 'EADDRINUSE', address: p });
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    expect(fs.existsSync(`${p}.lock`)).toBe(false);
    await first.close();
  });

  it('replaces a stale socket file (nobody listening)', async () => {
    const p = socketPath();
    // A socket file whose server is gone.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(p, r));
    const fd = (stale as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fd).toBeGreaterThan(0);
    // Close the listener without removing the file: net removes it on
    // close, so copy the situation by hard-linking first.
    const keep = `${p}.keep`;
    fs.linkSync(p, keep);
    await new Promise<void>((r) => stale.close(() => r()));
    fs.renameSync(keep, p);
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    expect(await getActiveState(p)).toBe('not-listening');
    await serve(p);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });

  it.each([
    ['a regular file', (p: string) => fs.writeFileSync(p, 'precious')],
    ['a directory', (p: string) => fs.mkdirSync(p)],
  ])('refuses %s at the path and leaves it alone', async (_name, make) => {
    const p = socketPath();
    make(p);
    await expect(createServer(p, () => 'x')).rejects.toMatchObject({ code: 'ERR_IPC_NOT_A_SOCKET' });
    expect(fs.existsSync(p)).toBe(true);
    if (fs.statSync(p).isFile()) expect(fs.readFileSync(p, 'utf8')).toBe('precious');
    expect(fs.existsSync(`${p}.lock`)).toBe(false);
  });

  it('fails with ENOENT when the directory does not exist', async () => {
    const p = path.join(tempDir(), 'missing', 'x.ipc');
    await expect(createServer(p, () => 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('waits for a held lock file for about 100 ms, then fails', async () => {
    const p = socketPath();
    fs.writeFileSync(`${p}.lock`, '');
    const started = Date.now();
    await expect(createServer(p, () => 'x')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    // Released meanwhile: starts. The lock goes 30 ms into the 100 ms
    // window; on a loaded machine this timer (or the server's retries) can
    // be late for the whole window, so up to five tries. A server that did
    // not retry would fail every one.
    fs.unlinkSync(`${p}.lock`);
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      fs.writeFileSync(`${p}.lock`, '');
      const release = setTimeout(() => fs.rmSync(`${p}.lock`, { force: true }), 30);
      try {
        await serve(p);
        lastError = undefined;
        break;
      } catch (error) {
        lastError = error;
        clearTimeout(release);
        fs.rmSync(`${p}.lock`, { force: true });
        if ((error as IpcError).code !== 'EEXIST') break;
      }
    }
    expect(lastError).toBeUndefined();
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });

  it('throws argument errors synchronously', () => {
    expect(() => createServer('', () => 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => createServer(42 as unknown as string, () => 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createServer('/tmp/x', 'nope' as unknown as () => string)).toThrow(TypeError);
    expect(() => createServer('/tmp/x', () => 'x', { threads: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => createServer('/tmp/x', () => 'x', { maxRequestBytes: -1 })).toThrow(TypeError);
  });
});

describe('the socket path', () => {
  it('stops by itself within about a second when its socket file is removed', async () => {
    const p = socketPath();
    const server = await serve(p);
    fs.unlinkSync(p);
    const started = Date.now();
    expect(await server.closed).toBe('stolen');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('stops when its socket is replaced by another server, and leaves the new one alone', async () => {
    const p = socketPath();
    const first = await serve(p, () => 'first');
    // Another server takes over the path (as after a stale-path restart).
    fs.unlinkSync(p);
    const second = await serve(p, () => 'second');
    expect(await first.closed).toBe('stolen');
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    expect((await sendCommand(p, 'x')).toString()).toBe('second');
    await second.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('stops when a regular file replaces the socket, and does not delete that file', async () => {
    const p = socketPath();
    const server = await serve(p);
    fs.unlinkSync(p);
    fs.writeFileSync(p, 'not yours');
    expect(await server.closed).toBe('stolen');
    expect(fs.readFileSync(p, 'utf8')).toBe('not yours');
  });

  it('close() removes the socket file and resolves closed with "closed"', async () => {
    const p = socketPath();
    const server = await createServer(p, () => 'x');
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    await server.close();
    expect(await server.closed).toBe('closed');
    expect(fs.existsSync(p)).toBe(false);
    await server.close(); // idempotent
  });
});

describe('clients that misbehave', () => {
  it('ignores connections that send nothing and hang up (liveness probes), silently', async () => {
    const p = socketPath();
    const server = await serve(p, () => 'pong', { threads: 1 });
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    for (let i = 0; i < 20; i++) expect(await getActiveState(p)).toBe('listening');
    expect((await sendCommand(p, 'x')).toString()).toBe('pong');
    await sleep(50);
    expect(errors).toEqual([]);
  });

  it('silent connections do not hold the workers: 1 thread, 20 idle clients, others still served', async () => {
    const p = socketPath();
    await serve(p, () => 'pong', { threads: 1 });
    await Promise.all(Array.from({ length: 20 }, () => rawConnection(p)));
    const half = await rawConnection(p);
    half.write('0010half');
    const started = Date.now();
    for (let i = 0; i < 10; i++) expect((await sendCommand(p, 'x')).toString()).toBe('pong');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a client sending garbage or vanishing mid-request does not disturb the others', async () => {
    const p = socketPath();
    const server = await serve(p, (r) => r, { threads: 2 });
    const codes: string[] = [];
    server.on('clientError', (e) => codes.push(e.code));
    const good = Promise.all(Array.from({ length: 50 }, (_, i) => sendCommand(p, `ok${i}`)));
    good.catch(() => {}); // awaited below; if a raw peer fails first, no unhandled rejection
    const bad = [
      rawExchange(p, 'garbage!', { end: true }),
      rawExchange(p, '0100' + 'x'.repeat(50), { end: true }),
      (async () => {
        const s = await rawConnection(p);
        s.write('0020abc');
        await sleep(20);
        s.destroy();
      })(),
    ];
    await Promise.all(bad);
    expect((await good).map((b) => b.toString())).toEqual(Array.from({ length: 50 }, (_, i) => `ok${i}`));
    await waitFor(() => codes.length === 3, 5000, 'three client errors');
    expect(codes.sort()).toEqual(['ERR_IPC_INCOMPLETE_REQUEST', 'ERR_IPC_INCOMPLETE_REQUEST', 'ERR_IPC_PROTOCOL']);
  });
});
