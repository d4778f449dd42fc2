// Starting a daemon on demand: ensureDaemon, the autoStart client option,
// and 20 real processes racing to start one daemon on a dead path.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, ensureDaemon, sendCommand, streamCommand, type DaemonStartError } from '../dist/index.js';
import { alive, exited, fixtures, onCleanup, repoRoot, tempDir, waitFor } from './helpers.js';

const DAEMON = path.join(fixtures, 'race-daemon.js');
const CLIENT = path.join(fixtures, 'race-client.js');

interface Setup {
  dir: string;
  socket: string;
  records: string;
  daemon: (extra?: string[]) => { command: string; args: string[]; maxWaitMs: number };
}

/** A dead path, a directory where daemons record themselves, and their cleanup. */
function setup(): Setup {
  const dir = tempDir('sipc-daemon-');
  const records = path.join(dir, 'records');
  fs.mkdirSync(records);
  const socket = path.join(dir, 'd.ipc');
  onCleanup(() => {
    for (const pid of daemonPids(records)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  return { dir, socket, records, daemon: (extra = []) => ({ command: process.execPath, args: [DAEMON, socket, records, ...extra], maxWaitMs: 30000 }) };
}

function daemonPids(records: string): number[] {
  return fs.readdirSync(records).map(Number);
}

function recordOf(records: string, pid: number): string {
  return fs.readFileSync(path.join(records, String(pid)), 'utf8');
}

/** The session id of a process (Linux), field 6 of /proc/<pid>/stat. */
function sessionOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

describe('ensureDaemon', () => {
  it('returns at once when the path listens, spawning nothing', async () => {
    const s = setup();
    const server = await createServer(s.socket, () => 'in-process', { threads: 1 });
    onCleanup(() => server.close({ timeoutMs: 0 }));
    expect(await ensureDaemon(s.socket, { command: '/nonexistent/never-run' })).toEqual({ state: 'running' });
  });

  it('starts the daemon detached, in its own session, and resolves once it listens', async () => {
    const s = setup();
    const result = await ensureDaemon(s.socket, s.daemon());
    expect(result).toEqual({ state: 'started', pid: expect.any(Number) });
    expect((await sendCommand(s.socket, 'pid')).toString()).toBe(String(result.pid));
    expect(recordOf(s.records, result.pid!)).toBe('serving');
    if (process.platform === 'linux') expect(sessionOf(result.pid!)).toBe(result.pid);
    // Started once: the next call finds it running.
    expect(await ensureDaemon(s.socket, s.daemon())).toEqual({ state: 'running' });
    expect(daemonPids(s.records)).toEqual([result.pid]);
    await sendCommand(s.socket, 'quit');
    await waitFor(() => !alive(result.pid!), 10000, 'the daemon to exit');
  });

  it('rejects with the tail of the log file when the daemon exits before listening', async () => {
    const s = setup();
    const logFile = path.join(s.dir, 'daemon.log');
    fs.writeFileSync(logFile, 'an older run\n');
    const error = (await ensureDaemon(s.socket, { ...s.daemon(['fail']), logFile }).catch((e: unknown) => e)) as DaemonStartError;
    expect(error).toMatchObject({ code: 'ERR_IPC_DAEMON_EXITED', exitCode: 2, signal: null, pid: expect.any(Number) });
    expect(error.logTail).toMatch(/^an older run\nrace-daemon \d+: configuration broken, giving up$/);
    expect(error.message).toContain('configuration broken');
  });

  it('rejects when maxWaitMs runs out, leaving the daemon to come up later', async () => {
    const s = setup();
    const sleeper = { command: process.execPath, args: ['-e', 'setTimeout(() => {}, 60000)'], maxWaitMs: 200 };
    const error = (await ensureDaemon(s.socket, sleeper).catch((e: unknown) => e)) as DaemonStartError;
    expect(error).toMatchObject({ code: 'ERR_IPC_DAEMON_TIMEOUT', pid: expect.any(Number) });
    expect(alive(error.pid!)).toBe(true);
    process.kill(error.pid!, 'SIGKILL');
  });

  it('rejects when the command cannot be started, or the path can never listen', async () => {
    const s = setup();
    await expect(ensureDaemon(s.socket, { command: path.join(s.dir, 'no-such-program') })).rejects.toMatchObject({
      code: 'ERR_IPC_DAEMON_SPAWN_FAILED',
    });
    fs.writeFileSync(s.socket, 'not a socket');
    await expect(ensureDaemon(s.socket, s.daemon())).rejects.toMatchObject({ code: 'ERR_IPC_DAEMON_PATH' });
    expect(daemonPids(s.records)).toEqual([]);
    expect(fs.readFileSync(s.socket, 'utf8')).toBe('not a socket');
  });

  it('checks its arguments synchronously', () => {
    const s = setup();
    expect(() => ensureDaemon(s.socket, {} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => ensureDaemon(s.socket, { command: 'x', args: [1] as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => ensureDaemon(s.socket, { command: 'x', maxWaitMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => ensureDaemon('', { command: 'x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => sendCommand(s.socket, 'x', { autoStart: { command: '' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('autoStart', () => {
  it('sendCommand starts the daemon when nobody listens, then sends; later calls reach the same daemon', async () => {
    const s = setup();
    const first = Number((await sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).toString());
    expect(daemonPids(s.records)).toEqual([first]);
    const second = Number((await sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).toString());
    expect(second).toBe(first);
    expect(daemonPids(s.records)).toEqual([first]);
    await sendCommand(s.socket, 'quit');
    await waitFor(() => !alive(first), 10000, 'the daemon to exit');
    // A stale socket file now ('not-listening'): started again.
    const third = Number((await sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).toString());
    expect(third).not.toBe(first);
  });

  it('streamCommand starts the daemon too', async () => {
    const s = setup();
    const chunks: Buffer[] = [];
    for await (const chunk of streamCommand(s.socket, 'pid', { autoStart: s.daemon() })) chunks.push(chunk);
    expect(daemonPids(s.records)).toEqual([Number(Buffer.concat(chunks).toString())]);
  });

  it('passes on a failed start and any other error', async () => {
    const s = setup();
    await expect(sendCommand(s.socket, 'pid', { autoStart: s.daemon(['fail']) })).rejects.toMatchObject({ code: 'ERR_IPC_DAEMON_EXITED' });
    // A server that answers with an incomplete response: no daemon started.
    const server = await createServer(s.socket, () => {
      throw new Error('broken');
    });
    server.on('handlerError', () => {});
    onCleanup(() => server.close({ timeoutMs: 0 }));
    const before = daemonPids(s.records).length;
    await expect(sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(daemonPids(s.records).length).toBe(before);
  });
});

describe('20 processes start one daemon at once', () => {
  it('exactly one daemon serves, every other daemon leaves with EADDRINUSE, every client is answered', { timeout: 180000 }, async () => {
    const s = setup();
    const CLIENTS = 20;
    const clients = Array.from({ length: CLIENTS }, (_, k) => {
      const child = spawn(process.execPath, [CLIENT, s.socket, s.records, k % 2 === 0 ? 'ensure' : 'autoStart'], {
        stdio: ['pipe', 'pipe', 'inherit'],
        cwd: repoRoot,
      });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      onCleanup(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      return { child, output: () => out };
    });
    // Once every process runs, all go at the same moment.
    await waitFor(() => clients.every((c) => c.output().startsWith('ready\n')), 120000, 'every client to start');
    for (const c of clients) c.child.stdin!.end('go\n');
    const codes = await Promise.all(clients.map((c) => exited(c.child)));
    const results = clients.map((c) => JSON.parse(c.output().slice('ready\n'.length)) as { answeredBy?: number; error?: string });

    const answered = results.filter((r) => r.answeredBy !== undefined);
    expect(results.filter((r) => r.error !== undefined)).toEqual([]);
    expect(codes).toEqual(Array(CLIENTS).fill(0));
    expect(answered.length).toBe(CLIENTS);
    const server = answered[0]!.answeredBy!;
    expect(answered.every((r) => r.answeredBy === server)).toBe(true);

    // Every daemon that lost has gone; the winner alone is alive.
    const spawned = daemonPids(s.records);
    await waitFor(() => spawned.filter(alive).length === 1, 30000, 'the losing daemons to exit');
    expect(spawned.filter(alive)).toEqual([server]);
    expect(recordOf(s.records, server)).toBe('serving');
    for (const pid of spawned) if (pid !== server) expect(recordOf(s.records, pid)).toBe('EADDRINUSE');
    console.log(`race: ${CLIENTS} clients, ${spawned.length} daemons spawned, 1 alive afterwards, ${answered.length}/${CLIENTS} requests answered`);
    await sendCommand(s.socket, 'quit');
  });
});
