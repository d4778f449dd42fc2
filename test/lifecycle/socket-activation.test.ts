// listenFd: a server on a listening socket it inherited, as systemd's
// socket activation hands it over (fd 3, LISTEN_FDS, LISTEN_PID), and the
// checks that refuse anything else. Real sockets and processes throughout.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, sendCommand } from '../../dist/index.js';
import { exited, fixtures, onCleanup, repoRoot, tempDir, track, waitForLine } from '../helpers.js';

const DAEMON = path.join(fixtures, 'activated-daemon.js');
const INHERITED = path.join(fixtures, 'inherited-fd.js');

/** `node script ...args` with `fd` as its fd 3 and a stdin pipe. */
function spawnWithFd3(script: string, args: string[], fd: number) {
  return track(spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe', fd], cwd: repoRoot }));
}

/** The fd of a node:net server or socket (POSIX). */
function fdOf(handle: net.Server | net.Socket): number {
  const fd = (handle as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThan(2);
  return fd;
}

/**
 * A listening Unix socket at `p`, made by node:net in this process. It is
 * bound under a temporary name and renamed to `p`, so that closing our
 * handle (which unlinks the name it bound) leaves `p` to the child.
 */
async function listeningSocket(p: string): Promise<net.Server> {
  const server = net.createServer((c) => c.destroy());
  const bound = p + '.bind';
  await new Promise<void>((resolve) => server.listen(bound, resolve));
  fs.renameSync(bound, p);
  onCleanup(() => closeOurCopy(server));
  return server;
}

function closeOurCopy(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

/**
 * Starts the daemon with `fd` as its fd 3, the way systemd does: a shell
 * sets LISTEN_PID to its own pid, then execs node (same pid).
 */
function activate(fd: number, socketFile: string, env: Record<string, string>, fdName?: string) {
  const args = [DAEMON, socketFile, ...(fdName === undefined ? [] : [fdName])];
  const script = 'LISTEN_PID=$$ exec "$0" "$@"';
  const child = spawn('/bin/sh', ['-c', script, process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', fd],
    env: { ...process.env, ...env },
    cwd: repoRoot,
  });
  return track(child);
}

/** Waits for the daemon's ready line: { listenFd, env }. */
async function ready(child: ChildProcess): Promise<{ listenFd: number | null; env: string[] }> {
  return JSON.parse(await waitForLine(child, /^\{|^error/, 20000)) as { listenFd: number | null; env: string[] };
}

describe.skipIf(process.platform === 'win32')('socket activation (listenFd)', () => {
  it('serves the socket inherited as fd 3 (LISTEN_FDS=1, LISTEN_PID), unsets the variables, never removes the file', async () => {
    const socketFile = path.join(tempDir(), 'activated.ipc');
    const listener = await listeningSocket(socketFile);
    const child = activate(fdOf(listener), socketFile, { LISTEN_FDS: '1' });
    expect(await ready(child)).toEqual({ listenFd: 3, env: [] });
    // From now on only the child holds the socket.
    await closeOurCopy(listener);
    expect(fs.existsSync(socketFile)).toBe(true);
    expect((await sendCommand(socketFile, 'pid')).toString()).toBe(String(child.pid));
    expect((await sendCommand(socketFile, 'hello')).toString()).toBe('hello');
    expect((await sendCommand(socketFile, 'quit')).length).toBe(0);
    expect(await exited(child)).toBe(0);
    expect(child.output()).toContain('closed quit');
    // The socket file belongs to whoever created it (systemd): still there.
    expect(fs.lstatSync(socketFile).isSocket()).toBe(true);
  });

  it('picks the socket named in LISTEN_FDNAMES', async () => {
    const dir = tempDir();
    const first = await listeningSocket(path.join(dir, 'first.ipc'));
    const second = await listeningSocket(path.join(dir, 'second.ipc'));
    const args = [DAEMON, path.join(dir, 'second.ipc'), 'control'];
    const child = track(
      spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, ...args], {
        stdio: ['ignore', 'pipe', 'pipe', fdOf(first), fdOf(second)],
        env: { ...process.env, LISTEN_FDS: '2', LISTEN_FDNAMES: 'data:control' },
        cwd: repoRoot,
      }),
    );
    expect(await ready(child)).toEqual({ listenFd: 4, env: [] });
    await closeOurCopy(second);
    expect((await sendCommand(path.join(dir, 'second.ipc'), 'pid')).toString()).toBe(String(child.pid));
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });

  it('ignores LISTEN_FDS meant for another process (LISTEN_PID is not ours) and binds the path itself', async () => {
    const socketFile = path.join(tempDir(), 'own.ipc');
    const child = track(
      spawn(process.execPath, [DAEMON, socketFile], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '1' },
        cwd: repoRoot,
      }),
    );
    expect(await ready(child)).toEqual({ listenFd: null, env: [] });
    expect((await sendCommand(socketFile, 'pid')).toString()).toBe(String(child.pid));
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    // Its own socket: removed on close.
    expect(fs.existsSync(socketFile)).toBe(false);
  });

  it('has no stolen-path check: renaming the socket file does not stop it', async () => {
    const dir = tempDir();
    const socketFile = path.join(dir, 'activated.ipc');
    const listener = await listeningSocket(socketFile);
    const child = activate(fdOf(listener), socketFile, { LISTEN_FDS: '1' });
    await ready(child);
    await closeOurCopy(listener);
    const moved = path.join(dir, 'moved.ipc');
    fs.renameSync(socketFile, moved);
    // A server of its own would stop ('stolen') within a second or two.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await sendCommand(moved, 'pid')).toString()).toBe(String(child.pid));
    expect(child.output()).not.toContain('closed');
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(fs.lstatSync(moved).isSocket()).toBe(true);
  });

  it('refuses what is not a listening Unix stream socket, leaving the fd open', async () => {
    const dir = tempDir();
    const p = path.join(dir, 'x.ipc');
    const file = fs.openSync(path.join(dir, 'plain'), 'w');
    onCleanup(() => fs.closeSync(file));
    await expect(createServer(p, () => 'x', { listenFd: file })).rejects.toMatchObject({ code: 'ENOTSOCK' });
    expect(fs.fstatSync(file).isFile()).toBe(true);

    const tcp = net.createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    onCleanup(() => closeOurCopy(tcp));
    await expect(createServer(p, () => 'x', { listenFd: fdOf(tcp) })).rejects.toMatchObject({ code: 'EPROTOTYPE' });

    const unixServer = await listeningSocket(path.join(dir, 'u.ipc'));
    // A connected socket that stays open: its server keeps the connection
    // (listeningSocket's would end it, and our descriptor with it).
    const holder = net.createServer(() => {});
    await new Promise<void>((resolve) => holder.listen(path.join(dir, 'h.ipc'), resolve));
    onCleanup(() => closeOurCopy(holder));
    const connected = net.connect(path.join(dir, 'h.ipc'));
    await new Promise<void>((resolve) => connected.once('connect', () => resolve()));
    onCleanup(() => void connected.destroy());
    await expect(createServer(p, () => 'x', { listenFd: fdOf(connected) })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(unixServer.listening).toBe(true);

    // Not an open descriptor at all.
    await expect(createServer(p, () => 'x', { listenFd: 1000000 })).rejects.toMatchObject({ code: 'EBADF' });
    expect(fs.existsSync(p)).toBe(false);
  });

  it('serves its own duplicate: two servers on one fd, the first closing leaves the second serving and the fd open', async () => {
    const dir = tempDir();
    const socketFile = path.join(dir, 'shared.ipc');
    const listener = await listeningSocket(socketFile);
    const child = spawnWithFd3(INHERITED, [socketFile, dir, 'twice'], fdOf(listener));
    await waitForLine(child, /^ready/, 20000);
    await closeOurCopy(listener);
    child.stdin!.end('go\n');
    const result = JSON.parse(await waitForLine(child, /^\{|^error/, 30000)) as object;
    expect(result).toEqual({ afterA: true, answers: ['b', 'b', 'b', 'b', 'b'], fileWritable: true, afterB: true });
    expect(await exited(child)).toBe(0);
  });

  it.skipIf(process.platform !== 'linux')('stops with close reason listener-failed when another holder shuts the socket down', async () => {
    const dir = tempDir();
    const socketFile = path.join(dir, 'shut.ipc');
    const listener = await listeningSocket(socketFile);
    const child = spawnWithFd3(INHERITED, [socketFile, dir, 'shutdown'], fdOf(listener));
    await waitForLine(child, /^ready/, 20000);
    await closeOurCopy(listener);
    child.stdin!.end('go\n');
    expect(await waitForLine(child, /^closed|^no close/, 30000)).toBe('closed listener-failed');
    expect(await exited(child)).toBe(0);
  });

  it('checks listenFd synchronously', () => {
    const p = path.join(tempDir(), 'x.ipc');
    expect(() => createServer(p, () => 'x', { listenFd: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => createServer(p, () => 'x', { listenFd: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createServer(p, () => 'x', { listenFd: '3' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

/** systemd-socket-activate (Debian's systemd package), when installed. */
function socketActivateBinary(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v systemd-socket-activate'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
const SOCKET_ACTIVATE = process.platform === 'linux' ? socketActivateBinary() : null;
if (SOCKET_ACTIVATE === null) console.log('SKIP systemd-socket-activate tests: systemd-socket-activate is not installed (apt-get install systemd)');

describe.skipIf(SOCKET_ACTIVATE === null)('under systemd-socket-activate', () => {
  it('serves the socket systemd-socket-activate created and passed', async () => {
    const socketFile = path.join(tempDir(), 'sd.ipc');
    const child = track(
      spawn(SOCKET_ACTIVATE!, ['-l', socketFile, '--fdname=control', process.execPath, DAEMON, socketFile, 'control'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: repoRoot,
      }),
    );
    // It listens first, then starts the daemon (at once, or on the first connection).
    const answer = sendCommand(socketFile, 'pid', { waitIfNotFound: true, connectTimeoutMs: 20000 });
    expect(await ready(child)).toEqual({ listenFd: 3, env: [] });
    expect((await answer).toString()).toBe(String(child.pid));
    expect((await sendCommand(socketFile, 'quit')).length).toBe(0);
    expect(await exited(child)).toBe(0);
  });
});
