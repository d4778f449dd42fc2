// Peer identity and access control: ctx.peer, socketMode, allowPeer, and
// (when the tests run as root) real clients of another user, to show what
// the socket's mode and its directory's permissions decide.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { createServer, sendCommand, type IpcServer, type PeerInfo, type ServerOptions } from '../dist/index.js';
import { onCleanup, repoRoot, tempDir, waitFor } from './helpers';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

async function serve(socket: string, options: ServerOptions = {}) {
  const peers: PeerInfo[] = [];
  let handled = 0;
  const handlerErrors: unknown[] = [];
  const server: IpcServer = await createServer(
    socket,
    (request, _reply, ctx) => {
      handled++;
      peers.push(ctx.peer);
      return request.toString() === 'peer' ? JSON.stringify(ctx.peer) : 'pong';
    },
    options,
  );
  server.on('handlerError', (e) => handlerErrors.push(e));
  onCleanup(() => server.close({ force: true }));
  return { server, peers, handlerErrors, handled: () => handled };
}

// Runs a raw node:net client (as another user if `uid` is given) that sends
// `ping` and reports {connected, data} or {error}.
function rawClient(socket: string, uid?: number): Promise<{ connected?: boolean; data?: string; error?: string }> {
  const script = `
    const net = require('node:net');
    const s = net.createConnection(process.argv[1]);
    let data = '';
    let connected = false;
    s.on('connect', () => { connected = true; s.write('0008ping0000'); });
    s.on('data', (d) => (data += d));
    s.on('error', (e) => { if (!connected) { console.log(JSON.stringify({ error: e.code })); process.exit(0); } });
    s.on('close', () => { console.log(JSON.stringify({ connected, data })); });
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, socket], {
      stdio: ['ignore', 'pipe', 'inherit'],
      ...(uid === undefined ? {} : { uid, gid: uid }),
      cwd: '/',
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    // 'close', not 'exit': stdout may still hold the last line at exit.
    child.on('close', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch {
        reject(new Error(`client printed: ${out}`));
      }
    });
  });
}

describe('peer identity', () => {
  test('ctx.peer carries pid, uid and gid of an in-process client', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const s = await serve(socket);
    const peer = JSON.parse((await sendCommand(socket, 'peer')).toString());
    const ours = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(peer).toEqual(ours);
    expect(s.peers).toEqual([ours]);
  });

  test('ctx.peer carries the pid of a client in another process', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const s = await serve(socket);
    const script = `const { sendCommandSync } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))});
      console.log(JSON.stringify({ pid: process.pid, peer: JSON.parse(sendCommandSync(process.argv[1], 'peer').toString()) }));`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
      let data = '';
      child.stdout.on('data', (d) => (data += d));
      child.on('error', reject);
      child.on('close', () => resolve(data)); // stdout is read to its end by then

    });
    const { pid, peer } = JSON.parse(out);
    expect(peer.pid).toBe(pid);
    expect(peer.pid).not.toBe(process.pid);
    expect(s.peers).toHaveLength(1);
  });
});

// Credentials are read from the socket only when used (POSIX): these read
// ctx.peer late, in the ways a handler can.
describe.runIf(process.platform !== 'win32')('ctx.peer read late', () => {
  const ours = () => ({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });

  test('after an await, while the client waits: the client\'s credentials', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const server = await createServer(socket, async (_request, _reply, ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return JSON.stringify(ctx.peer);
    });
    onCleanup(() => server.close({ force: true }));
    expect(JSON.parse((await sendCommand(socket, 'x')).toString())).toEqual(ours());
  });

  test('in a handlerError listener, after the conversation was aborted: the client\'s credentials', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const server = await createServer(socket, () => {
      throw new Error('planned');
    });
    onCleanup(() => server.close({ force: true }));
    const seen = new Promise<PeerInfo>((resolve) => server.on('handlerError', (_e, _r, peer) => resolve(peer)));
    await expect(sendCommand(socket, 'x')).rejects.toThrow();
    expect(await seen).toEqual(ours());
  });

  test('first read after the client left and the server closed the connection: pid, uid and gid null', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    let late: PeerInfo | undefined;
    const server = await createServer(socket, async (_request, _reply, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      late = ctx.peer;
    });
    onCleanup(() => server.close({ force: true }));
    const controller = new AbortController();
    const call = sendCommand(socket, 'x', { signal: controller.signal });
    await waitFor(() => server.stats().connections.beingAnswered === 1);
    controller.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => late !== undefined);
    expect(late).toEqual({ pid: null, uid: null, gid: null });
  });
});

describe('socketMode', () => {
  test.each([
    ['0o600', 0o600],
    ['0o660', 0o660],
    ['0o666', 0o666],
  ])('%s is the mode of the socket file; the umask is untouched', async (_label, mode) => {
    const socket = path.join(tempDir(), 's.ipc');
    const umask = process.umask();
    await serve(socket, { socketMode: mode });
    expect(fs.lstatSync(socket).mode & 0o7777).toBe(mode);
    expect(process.umask()).toBe(umask);
  });

  test('without socketMode the mode comes from the umask', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    await serve(socket);
    const umask = process.umask();
    expect(fs.lstatSync(socket).mode & 0o777).toBe(0o777 & ~umask);
  });

  test('no client connects before the mode is in place', async () => {
    const dir = tempDir();
    const socket = path.join(dir, 's.ipc');
    // A prober that connects as soon as it can and reports the mode then.
    const script = `
      const fs = require('node:fs'); const net = require('node:net');
      const p = process.argv[1];
      const tryOnce = () => {
        const s = net.createConnection(p);
        s.on('connect', () => { console.log((fs.lstatSync(p).mode & 0o777).toString(8)); process.exit(0); });
        s.on('error', () => setImmediate(tryOnce));
      };
      console.log('ready'); tryOnce();`;
    const prober = spawn(process.execPath, ['-e', script, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    onCleanup(() => prober.kill('SIGKILL'));
    let out = '';
    prober.stdout.on('data', (d) => (out += d));
    await waitFor(() => out.includes('ready'));
    await serve(socket, { socketMode: 0o600 });
    await waitFor(() => out.trim().split('\n').length >= 2, 10000, 'prober');
    expect(out.trim().split('\n')[1]).toBe('600');
  });
});

describe('allowPeer', () => {
  test('a refused peer is disconnected before its request is read and never reaches the handler', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const seen: PeerInfo[] = [];
    const s = await serve(socket, {
      allowPeer: (peer) => {
        seen.push(peer);
        return false;
      },
    });
    await expect(sendCommand(socket, 'peer')).rejects.toHaveProperty('code');
    // Even a large request is not read.
    await expect(sendCommand(socket, Buffer.alloc(8 * 1024 * 1024))).rejects.toHaveProperty('code');
    expect(s.handled()).toBe(0);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  });

  test('an asynchronous verdict is awaited', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    const s = await serve(socket, {
      allowPeer: (peer) => new Promise((resolve) => setTimeout(() => resolve(peer.pid === process.pid), 100)),
    });
    expect((await sendCommand(socket, 'x')).toString()).toBe('pong');
    expect(s.handled()).toBe(1);
  });

  // README: anything but `true` (or a promise of it) disconnects.
  test.each([
    ['undefined', undefined],
    ['1', 1],
    ["'yes'", 'yes'],
    ["'true'", 'true'],
    ['{}', {}],
    ['a promise of 1', Promise.resolve(1)],
  ])('a verdict of %s refuses the peer', async (_label, verdict) => {
    const socket = path.join(tempDir(), 's.ipc');
    let calls = 0;
    const s = await serve(socket, {
      allowPeer: () => {
        calls++;
        return verdict as unknown as boolean;
      },
    });
    await expect(sendCommand(socket, 'x')).rejects.toHaveProperty('code');
    expect(calls).toBe(1);
    expect(s.handled()).toBe(0);
    expect(s.handlerErrors).toEqual([]);
  });

  test('allowPeer that throws or rejects refuses the peer and reports a handlerError', async () => {
    const socket = path.join(tempDir(), 's.ipc');
    let calls = 0;
    const s = await serve(socket, {
      allowPeer: () => {
        calls++;
        if (calls === 1) throw new Error('thrown');
        return Promise.reject(new Error('rejected'));
      },
    });
    await expect(sendCommand(socket, 'x')).rejects.toHaveProperty('code');
    await expect(sendCommand(socket, 'x')).rejects.toHaveProperty('code');
    expect(s.handled()).toBe(0);
    await waitFor(() => s.handlerErrors.length === 2);
  });
});

describe.skipIf(!isRoot)('another user (tests run as root)', () => {
  // A directory others may search, as /run/user/<uid> or a project's .git
  // would not be: the socket's own mode then decides.
  function sharedDir(): string {
    const dir = tempDir();
    fs.chmodSync(dir, 0o711);
    return dir;
  }

  test('default mode from a 022 umask: another user cannot connect (no write permission)', async () => {
    const socket = path.join(sharedDir(), 's.ipc');
    const old = process.umask(0o022);
    try {
      await serve(socket);
    } finally {
      process.umask(old);
    }
    expect(await rawClient(socket, NOBODY)).toEqual({ error: 'EACCES' });
    expect(await rawClient(socket)).toMatchObject({ connected: true, data: '0008pong0000' });
  });

  test('socketMode 0o666 lets another user in; 0o600 keeps them out', async () => {
    const open = path.join(sharedDir(), 'open.ipc');
    await serve(open, { socketMode: 0o666 });
    expect(await rawClient(open, NOBODY)).toMatchObject({ connected: true, data: '0008pong0000' });
    const closed = path.join(sharedDir(), 'closed.ipc');
    await serve(closed, { socketMode: 0o600 });
    expect(await rawClient(closed, NOBODY)).toEqual({ error: 'EACCES' });
  });

  test('a private 0700 directory keeps another user out whatever the socket mode', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o700);
    const socket = path.join(dir, 's.ipc');
    await serve(socket, { socketMode: 0o777 });
    expect(await rawClient(socket, NOBODY)).toEqual({ error: 'EACCES' });
  });

  test('allowPeer by uid refuses another user who can reach the socket', async () => {
    const socket = path.join(sharedDir(), 's.ipc');
    const seen: PeerInfo[] = [];
    const s = await serve(socket, {
      socketMode: 0o666,
      allowPeer: (peer) => {
        seen.push(peer);
        return peer.uid === process.getuid!();
      },
    });
    const refused = await rawClient(socket, NOBODY);
    expect(refused).toEqual({ connected: true, data: '' });
    expect(seen[0]).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(s.handled()).toBe(0);
    expect(await rawClient(socket)).toMatchObject({ connected: true, data: '0008pong0000' });
    expect(s.handled()).toBe(1);
  });
});
