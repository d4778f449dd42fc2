// The client (docs/protocol.md#client): connect rules, active states, sync client, long
// paths, cancellation and timeouts.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import {
  connect,
  createServer,
  getActiveState,
  getActiveStateSync,
  sendCommand,
  sendCommandSync,
  streamCommand,
  type IpcServer,
} from '../dist/index.js';
import { testAppHandler } from '../dist/test-app.js';
import { fixtures, onCleanup, socketPath, spawnNode, tempDir, waitForLine } from './helpers';

async function serve(p: string, handler = testAppHandler, options: Parameters<typeof createServer>[2] = {}): Promise<IpcServer> {
  const server = await createServer(p, handler, options);
  onCleanup(() => server.close({ timeoutMs: 0 }));
  return server;
}

/** A socket file with nobody listening behind it. */
async function staleSocket(p: string): Promise<void> {
  const stale = net.createServer();
  await new Promise<void>((r) => stale.listen(p, r));
  fs.linkSync(p, `${p}.keep`);
  await new Promise<void>((r) => stale.close(() => r()));
  fs.renameSync(`${p}.keep`, p);
}

/** A bound datagram socket at `p` (a socket file a stream connect rejects with EPROTOTYPE). */
async function datagramSocket(p: string): Promise<void> {
  const child = spawn('python3', ['-c', `import socket,sys,time\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint('bound', flush=True)\ntime.sleep(60)`, p], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onCleanup(() => child.kill('SIGKILL'));
  await waitForLine(child, /bound/);
}

/** A path of exactly `length` bytes, in new nested directories. */
function longPath(length: number): string {
  let dir = tempDir();
  // Leave 20 to 80 bytes for the file name.
  while (length - dir.length - 1 > 80) {
    dir = path.join(dir, 'd'.repeat(Math.min(60, length - dir.length - 1 - 20 - 1)));
    fs.mkdirSync(dir);
  }
  const room = length - dir.length - 1;
  const result = path.join(dir, 'x'.repeat(room - '.ipc'.length) + '.ipc');
  expect(result.length).toBe(length);
  return result;
}

describe('getActiveState', () => {
  it('listening', async () => {
    const p = socketPath();
    await serve(p);
    expect(await getActiveState(p)).toBe('listening');
    expect(getActiveStateSync(p)).toBe('listening');
  });

  it('not-listening when nothing is at the path (as Git says, not path-not-found)', async () => {
    const p = socketPath();
    expect(await getActiveState(p)).toBe('not-listening');
    expect(getActiveStateSync(p)).toBe('not-listening');
  });

  it('not-listening when a directory in the path is a file (ENOTDIR)', async () => {
    const file = path.join(tempDir(), 'file');
    fs.writeFileSync(file, '');
    expect(await getActiveState(path.join(file, 'x.ipc'))).toBe('not-listening');
  });

  it('not-listening for a stale socket file', async () => {
    const p = socketPath();
    await staleSocket(p);
    expect(await getActiveState(p)).toBe('not-listening');
  });

  it('invalid-path for a regular file or a directory', async () => {
    const p = socketPath();
    fs.writeFileSync(p, '');
    expect(await getActiveState(p)).toBe('invalid-path');
    const d = socketPath('dir');
    fs.mkdirSync(d);
    expect(getActiveStateSync(d)).toBe('invalid-path');
  });

  it('other-error for a socket that refuses stream connections (EPROTOTYPE)', async () => {
    const p = socketPath();
    await datagramSocket(p);
    expect(await getActiveState(p)).toBe('other-error');
  });

  it('leaves the server undisturbed (the probe sends nothing)', async () => {
    const p = socketPath();
    const server = await serve(p);
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    await Promise.all(Array.from({ length: 30 }, () => getActiveState(p)));
    await sleep(50);
    expect(errors).toEqual([]);
  });
});

describe('connect rules', () => {
  it('ENOENT at once when the path does not exist (state path-not-found)', async () => {
    const p = socketPath();
    const started = Date.now();
    await expect(sendCommand(p, 'ping')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'connect', address: p, state: 'path-not-found' });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('waitIfNotFound: retries until the server appears', async () => {
    const p = socketPath();
    setTimeout(() => void serve(p), 300);
    const response = await sendCommand(p, 'ping', { waitIfNotFound: true });
    expect(response.toString()).toBe('pong');
  });

  it('waitIfNotFound: gives up after connectTimeoutMs with not-listening', async () => {
    const p = socketPath();
    const started = Date.now();
    await expect(sendCommand(p, 'ping', { waitIfNotFound: true, connectTimeoutMs: 300 })).rejects.toMatchObject({
      code: 'ENOENT',
      state: 'not-listening',
    });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(200);
    expect(took).toBeLessThan(2000);
  });

  it('ECONNREFUSED at once on a stale socket without waitIfBusy', async () => {
    const p = socketPath();
    await staleSocket(p);
    await expect(sendCommand(p, 'ping', { waitIfBusy: false })).rejects.toMatchObject({ code: 'ECONNREFUSED', state: 'not-listening' });
  });

  it('waitIfBusy (the default): keeps trying, and reaches a server that starts meanwhile', async () => {
    const p = socketPath();
    await staleSocket(p);
    setTimeout(() => void serve(p), 300);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });

  it('waitIfBusy gives up after about 1000 ms by default', async () => {
    const p = socketPath();
    await staleSocket(p);
    const started = Date.now();
    await expect(sendCommand(p, 'ping')).rejects.toMatchObject({ code: 'ECONNREFUSED', state: 'not-listening' });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(800);
    expect(took).toBeLessThan(3000);
  });

  it('other errors end at once (state other-error)', async () => {
    const p = socketPath();
    await datagramSocket(p);
    await expect(sendCommand(p, 'ping')).rejects.toMatchObject({ code: 'EPROTOTYPE', state: 'other-error' });
  });

  it('throws argument errors synchronously', () => {
    expect(() => sendCommand('', 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => sendCommand('/tmp/x', 42 as unknown as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => sendCommand('/tmp/x', 'x', { timeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => sendCommand('/tmp/x', 'x', { waitIfBusy: 'yes' as unknown as boolean })).toThrow(TypeError);
    expect(() => streamCommand('/tmp/x', {} as unknown as string)).toThrow(TypeError);
    expect(() => sendCommandSync('/tmp/x\0y', 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });
});

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
    await serve(p, hang);
    const controller = new AbortController();
    const pending = sendCommand(p, 'x', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('enough')), 50);
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
    await serve(p, () => new Promise<never>(() => {}), { threads: 2 });
    const controller = new AbortController();
    const inFlight = Array.from({ length: 200 }, () => sendCommand(p, 'x', { signal: controller.signal }).catch((e: Error) => e));
    await sleep(100);
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
    const server = await serve(p);
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    const connection = await connect(p);
    connection.close();
    await sleep(50);
    expect(errors).toEqual([]);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});

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
    const p = socketPath();
    await serve(p);
    const controller = new AbortController();
    const connection = await connect(p, { signal: controller.signal });
    controller.abort();
    await sleep(100);  // the cancel has come back from the native side
    await expect(connection.send('ping')).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError' });
  });

  it('rejects with ERR_IPC_TIMEOUT when timeoutMs ran out before send()', async () => {
    const p = socketPath();
    await serve(p);
    const connection = await connect(p, { timeoutMs: 100 });
    await sleep(400);
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
    const server = await serve(p);
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    let kept: Awaited<ReturnType<typeof connect>> | undefined;
    {
      const connection = await connect(p);
      kept = connection;
      await connection[Symbol.asyncDispose]();
    }
    await expect(kept.send('ping')).rejects.toMatchObject({ code: 'ERR_IPC_CONNECTION_USED' });
    await sleep(50);
    expect(errors).toEqual([]);
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

describe('long socket paths (beyond sun_path, without chdir)', () => {
  it.each([150, 300])('serves and connects at a %d-byte path', async (length) => {
    const p = longPath(length);
    const cwd = process.cwd();
    const server = await serve(p);
    expect(process.cwd()).toBe(cwd);
    // The socket file is at the full path, not at a truncated one.
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    expect(fs.readdirSync(path.dirname(p))).toEqual([path.basename(p)]);
    expect(await getActiveState(p)).toBe('listening');
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    const connection = await connect(p);
    expect((await connection.send('ping')).toString()).toBe('pong');
    await expect(createServer(p, () => 'x')).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await server.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('the sync client reaches a 300-byte path', async () => {
    const p = longPath(300);
    const child = spawnNode(path.join(fixtures, 'app-server.js'), [p]);
    await waitForLine(child, /listening/);
    expect(sendCommandSync(p, 'ping').toString()).toBe('pong');
    expect(getActiveStateSync(p)).toBe('listening');
  });

  it('fails with ENAMETOOLONG naming the path when even the short form cannot fit', async () => {
    const dir = tempDir();
    const p = path.join(dir, 'n'.repeat(120) + '.ipc');
    const error = await createServer(p, () => 'x').then(
      () => null,
      (e: Error & { code: string }) => e,
    );
    expect(error).toMatchObject({ code: 'ENAMETOOLONG' });
    expect(error!.message).toContain(p);
    expect(error!.message).toContain(String(p.length));
    await expect(sendCommand(p, 'x')).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
