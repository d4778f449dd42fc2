// The rendezvous at the socket path (docs/protocol.md#the-server,
// docs/protocol.md#the-lock-file, docs/protocol.md#stolen-path): start rules,
// live, stale and foreign files at the path, lock files left over, a path
// deleted or replaced under a running server (in this process and in its
// own), the active state a client reads there, and paths longer than
// sun_path.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { connect, createServer, getActiveState, getActiveStateSync, sendCommand, sendCommandSync, type IpcError } from '../dist/index.js';
import { datagramSocket, exited, fixtures, onCleanup, posix, socketPath, spawnNode, staleSocket, tempDir, waitForLine } from './helpers';
import { startServerChild } from './server-child';
import { clientErrorMarker, serve } from './servers';

// The pid of a process that has exited (and been reaped).
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

function writeLock(p: string, content: string, ageSeconds = 0): string {
  const lock = `${p}.lock`;
  fs.writeFileSync(lock, content);
  if (ageSeconds > 0) {
    const then = new Date(Date.now() - ageSeconds * 1000);
    fs.utimesSync(lock, then, then);
  }
  return lock;
}

async function start(p: string) {
  const server = await createServer(p, () => 'pong');
  onCleanup(() => server.close());
  return server;
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

/** A running server, and a second one that tries its path. */
interface LiveServer {
  refusesSecond(): Promise<void>;
  stop(): Promise<void>;
}

const liveServers: Array<[string, (p: string) => Promise<LiveServer>]> = [
  [
    'in this process',
    async (p) => {
      const first = await serve(p);
      return {
        refusesSecond: () => expect(createServer(p, () => 'second')).rejects.toMatchObject({ code: 'EADDRINUSE', address: p }),
        stop: () => first.close(),
      };
    },
  ],
  [
    'in another process',
    async (p) => {
      const first = await startServerChild(p);
      return {
        refusesSecond: () => expect(startServerChild(p)).rejects.toThrow(/EADDRINUSE/),
        stop: async () => {
          first.child.kill('SIGTERM');
          await first.waitEvent((e) => e.event === 'close');
        },
      };
    },
  ],
];

describe('starting', () => {
  it.each(liveServers)('a second server %s on a live path fails with EADDRINUSE and the first keeps serving', async (_where, start) => {
    const p = socketPath();
    const first = await start(p);
    await first.refusesSecond();
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    expect(fs.existsSync(`${p}.lock`)).toBe(false);
    await first.stop();
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

describe.runIf(posix)('a left-over lock file', () => {
  it('naming a dead process (ours, killed while starting) is taken over', async () => {
    const p = socketPath();
    const lock = writeLock(p, `${deadPid()}\n`);
    await start(p);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it("without a pid (Git's) is taken over once it is older than a few seconds", async () => {
    const p = socketPath();
    writeLock(p, '', 10);
    await start(p);
  });

  it('without a pid but fresh (someone is starting right now) is respected: EEXIST', async () => {
    const p = socketPath();
    const lock = writeLock(p, '');
    await expect(createServer(p, () => 'pong')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.existsSync(lock)).toBe(true);
  });

  it('naming a live process is never taken, however old', async () => {
    const p = socketPath();
    const lock = writeLock(p, `${process.pid}\n`, 60);
    await expect(createServer(p, () => 'pong')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
  });
});

/** A running server whose socket file the test takes away, and how it ends. */
interface Stealable {
  /** Resolves with the reason it stopped for. */
  stopReason(): Promise<unknown>;
  /** After it stopped: checks that it ended cleanly (a child exits with 0). */
  endedCleanly(): Promise<void>;
  /** How soon after the theft it must have stopped; a child reports over a pipe, later. */
  stopsWithinMs: number;
}

// The stolen-path check runs on a serving thread whatever the JS thread is
// doing; a server in its own process shows it stops that process too.
const stealable: Array<[string, (p: string) => Promise<Stealable>]> = [
  [
    'in this process',
    async (p) => {
      const server = await serve(p);
      return { stopReason: () => server.closed, endedCleanly: async () => {}, stopsWithinMs: 3000 };
    },
  ],
  [
    'in a child process',
    async (p) => {
      const server = await startServerChild(p);
      return {
        stopReason: async () => (await server.waitEvent((e) => e.event === 'close', 10000, 'close')).reason,
        endedCleanly: async () => expect(await exited(server.child)).toBe(0),
        stopsWithinMs: 5000,
      };
    },
  ],
];

// docs/protocol.md#stolen-path
describe.each(stealable)('the socket path of a server %s', (_where, start) => {
  it('deleted: the server stops by itself within about a second', async () => {
    const p = socketPath();
    const server = await start(p);
    const started = Date.now();
    fs.unlinkSync(p);
    expect(await server.stopReason()).toBe('stolen');
    // Checked at least once a second; the bound is generous for busy machines.
    expect(Date.now() - started).toBeLessThan(server.stopsWithinMs);
    await server.endedCleanly();
  });

  it('replaced by another server: the server stops and leaves the new socket alone', async () => {
    const p = socketPath();
    const server = await start(p);
    // Another server takes over the path (as after a stale-path restart).
    fs.unlinkSync(p);
    const second = await serve(p, () => 'second');
    const started = Date.now();
    expect(await server.stopReason()).toBe('stolen');
    expect(Date.now() - started).toBeLessThan(server.stopsWithinMs);
    await server.endedCleanly();
    // The new socket is still there and still answers.
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    expect((await sendCommand(p, 'x')).toString()).toBe('second');
    await second.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('replaced by a regular file: the server stops and leaves the file alone', async () => {
    const p = socketPath();
    const server = await start(p);
    fs.unlinkSync(p);
    fs.writeFileSync(p, 'not yours');
    expect(await server.stopReason()).toBe('stolen');
    await server.endedCleanly();
    expect(fs.readFileSync(p, 'utf8')).toBe('not yours');
  });
});

describe('the socket path', () => {
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
    const server = await serve(p, undefined, { threads: 1 });
    const errors: unknown[] = [];
    server.on('clientError', (e) => errors.push(e));
    await Promise.all(Array.from({ length: 30 }, () => getActiveState(p)));
    expect(errors).toEqual([await clientErrorMarker(server, p)]);
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
