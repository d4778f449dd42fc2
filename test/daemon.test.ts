// Starting a daemon on demand: ensureDaemon, the autoStart client option,
// and 30 real processes racing to start one daemon on a dead path.
import { spawn } from 'node:child_process';
import * as dc from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, ensureDaemon, getActiveState, sendCommand, streamCommand, type ClientResponseMessage, type DaemonStartError } from '../dist/index.js';
import { alive, exited, fixtures, onCleanup, repoRoot, staleSocket, tempDir, waitFor } from './helpers.js';

const DAEMON = path.join(fixtures, 'race-daemon.js');
const CLIENT = path.join(fixtures, 'race-client.js');
const VERSIONED = path.join(fixtures, 'versioned-daemon.js');

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

function startLockOf(socket: string): string {
  return `${socket}.start.lock`;
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
    onCleanup(() => server.close({ force: true }));
    expect(await ensureDaemon(s.socket, { command: '/nonexistent/never-run' })).toEqual({ state: 'running' });
  });

  it('starts the daemon detached, in its own session, and resolves once it listens', async () => {
    const s = setup();
    const result = await ensureDaemon(s.socket, s.daemon());
    expect(result).toEqual({ state: 'started', pid: expect.any(Number) });
    expect((await sendCommand(s.socket, 'pid')).toString()).toBe(String(result.pid));
    // The daemon writes its record once createServer resolves, which may
    // come after it answered a first request.
    await waitFor(() => recordOf(s.records, result.pid!) === 'serving', 10000, 'the daemon to record itself');
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
    onCleanup(() => server.close({ force: true }));
    const before = daemonPids(s.records).length;
    await expect(sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(daemonPids(s.records).length).toBe(before);
  });
});

describe('30 processes start one daemon at once', () => {
  it('one daemon is spawned (the start lock), every client is answered by it', { timeout: 120000 }, async () => {
    const s = setup();
    // A dead path: a socket file nobody listens behind.
    await staleSocket(s.socket);
    const CLIENTS = 30;
    const clients = Array.from({ length: CLIENTS }, (_, k) => {
      const child = spawn(process.execPath, [CLIENT, s.socket, s.records, k % 2 === 0 ? 'ensure' : 'autoStart', 'delay=300'], {
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
    await waitFor(() => clients.every((c) => c.output().startsWith('ready\n')), 60000, 'every client to start');
    for (const c of clients) c.child.stdin!.end('go\n');
    const codes = await Promise.all(clients.map((c) => exited(c.child)));
    const results = clients.map((c) => JSON.parse(c.output().slice('ready\n'.length)) as { answeredBy?: number; error?: string });

    expect(results.filter((r) => r.error !== undefined)).toEqual([]);
    expect(codes).toEqual(Array(CLIENTS).fill(0));
    const spawned = daemonPids(s.records);
    expect(spawned.length).toBe(1);
    const answered = results.filter((r) => r.answeredBy === spawned[0]);
    expect(answered.length).toBe(CLIENTS);
    await waitFor(() => recordOf(s.records, spawned[0]!) === 'serving', 10000, 'the daemon to record itself');
    expect(fs.existsSync(startLockOf(s.socket))).toBe(false);
    console.log(`race: ${CLIENTS} processes on a dead path, ${spawned.length} daemon spawned, ${answered.length}/${CLIENTS} answered by it`);
    await sendCommand(s.socket, 'quit');
  });

  it('the start lock of a starter killed mid-start is taken over', { timeout: 60000 }, async () => {
    const s = setup();
    // A starter whose daemon never comes up in time: it holds the lock while it waits.
    const starter = spawn(process.execPath, [CLIENT, s.socket, s.records, 'ensure', 'delay=60000'], { stdio: ['pipe', 'pipe', 'inherit'], cwd: repoRoot });
    onCleanup(() => starter.kill('SIGKILL'));
    starter.stdin!.end('go\n');
    await waitFor(() => fs.existsSync(startLockOf(s.socket)) && daemonPids(s.records).length === 1, 30000, 'the starter to take the lock and spawn');
    starter.kill('SIGKILL');
    await exited(starter);
    for (const pid of daemonPids(s.records)) process.kill(pid, 'SIGKILL');
    expect(fs.existsSync(startLockOf(s.socket))).toBe(true);
    // A wedged lock would keep this caller waiting until maxWaitMs.
    const result = await ensureDaemon(s.socket, { ...s.daemon(), maxWaitMs: 10000 });
    expect(result).toEqual({ state: 'started', pid: expect.any(Number) });
    expect(Number((await sendCommand(s.socket, 'pid')).toString())).toBe(result.pid);
    expect(fs.existsSync(startLockOf(s.socket))).toBe(false);
    await sendCommand(s.socket, 'quit');
  });
});

describe('autoStart within the call', () => {
  it('signal and timeoutMs bound the whole call while the daemon starts; the late daemon is left running', { timeout: 60000 }, async () => {
    const s = setup();
    const slow = s.daemon(['delay=4000']);
    let t = performance.now();
    const aborted = await sendCommand(s.socket, 'pid', { autoStart: slow, signal: AbortSignal.timeout(500) }).catch((e: unknown) => e);
    const abortMs = performance.now() - t;
    expect(aborted).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    t = performance.now();
    const timedOut = await sendCommand(s.socket, 'pid', { autoStart: slow, timeoutMs: 500 }).catch((e: unknown) => e);
    const timeoutMs = performance.now() - t;
    expect(timedOut).toMatchObject({ code: 'ERR_IPC_TIMEOUT' });
    console.log(`slow start (4000 ms): signal of 500 ms rejected after ${abortMs.toFixed(0)} ms, timeoutMs 500 after ${timeoutMs.toFixed(0)} ms`);
    // The wait for the daemon itself ends at once: without the bounds it
    // would end with the daemon, 4 s later.
    expect(abortMs).toBeLessThan(2000);
    expect(timeoutMs).toBeLessThan(2000);
    // One daemon was spawned (the second call found the first one starting)
    // and it comes up by itself.
    const [pid] = daemonPids(s.records);
    expect(daemonPids(s.records)).toEqual([pid]);
    await waitFor(async () => (await getActiveState(s.socket)) === 'listening', 30000, 'the late daemon to listen');
    expect(Number((await sendCommand(s.socket, 'pid', { autoStart: slow })).toString())).toBe(pid);
    await sendCommand(s.socket, 'quit');
  });

  it('recovers from a daemon killed with SIGKILL as fast as from a cold start; a plain client keeps waiting as Git does', { timeout: 60000 }, async () => {
    const s = setup();
    const daemon = s.daemon(['delay=300']);
    let t = performance.now();
    const first = Number((await sendCommand(s.socket, 'pid', { autoStart: daemon })).toString());
    const coldMs = performance.now() - t;
    process.kill(first, 'SIGKILL');
    await waitFor(() => !alive(first), 10000, 'the daemon to die');
    expect(await getActiveState(s.socket)).toBe('not-listening');
    // Without autoStart the refusing socket is retried for connectTimeoutMs.
    t = performance.now();
    await expect(sendCommand(s.socket, 'pid', { connectTimeoutMs: 300 })).rejects.toMatchObject({ code: 'ECONNREFUSED', state: 'not-listening' });
    expect(performance.now() - t).toBeGreaterThanOrEqual(290);
    t = performance.now();
    const second = Number((await sendCommand(s.socket, 'pid', { autoStart: daemon })).toString());
    const recoveryMs = performance.now() - t;
    expect(second).not.toBe(first);
    console.log(`cold start ${coldMs.toFixed(0)} ms, recovery after kill -9 ${recoveryMs.toFixed(0)} ms (${(recoveryMs / coldMs).toFixed(2)}x)`);
    // Waiting out the default connectTimeoutMs first would add 1000 ms.
    expect(recoveryMs).toBeLessThan(coldMs * 1.2 + 250);
    await sendCommand(s.socket, 'quit');
  });

  it.skipIf(process.platform !== 'linux')('on Linux a refusing socket starts the daemon at once, however long connectTimeoutMs is', { timeout: 60000 }, async () => {
    // A socket file nobody listens on refuses; Linux says so only when
    // nobody is there, so autoStart's first connect does not wait it out.
    // Waiting it out would spend the whole call (timeoutMs) in the connect.
    const s = setup();
    await staleSocket(s.socket);
    expect(await getActiveState(s.socket)).toBe('not-listening');
    const t = performance.now();
    const pid = Number((await sendCommand(s.socket, 'pid', { autoStart: s.daemon(), connectTimeoutMs: 60000, timeoutMs: 20000 })).toString());
    console.log(`refusing socket, connectTimeoutMs 60000: started and answered in ${(performance.now() - t).toFixed(0)} ms`);
    expect(daemonPids(s.records)).toEqual([pid]);
    await sendCommand(s.socket, 'quit');
  });

  it('shows as one exchange on the diagnostics channel, with the start as a field', async () => {
    const s = setup();
    const seen: ClientResponseMessage[] = [];
    const listener = (m: unknown) => seen.push(m as ClientResponseMessage);
    dc.subscribe('simple-ipc:client:response', listener);
    onCleanup(() => dc.unsubscribe('simple-ipc:client:response', listener));
    const pid = Number((await sendCommand(s.socket, 'pid', { autoStart: s.daemon() })).toString());
    expect(seen).toEqual([expect.objectContaining({ kind: 'send', code: null, error: null, responseBytes: String(pid).length })]);
    expect(seen[0]!.autoStart).toEqual({ state: 'started', pid, durationMs: expect.any(Number) });
    // Running already: one exchange, no start.
    for await (const chunk of streamCommand(s.socket, 'pid', { autoStart: s.daemon() })) void chunk;
    expect(seen.length).toBe(2);
    expect(seen[1]).toMatchObject({ kind: 'stream', code: null, responseBytes: String(pid).length });
    expect(seen[1]!.autoStart).toBeUndefined();
    await sendCommand(s.socket, 'quit');
    // A failed start: one exchange, its error and the failed start.
    await waitFor(() => !alive(pid), 10000, 'the daemon to exit');
    seen.length = 0;
    await expect(sendCommand(s.socket, 'pid', { autoStart: s.daemon(['fail']) })).rejects.toMatchObject({ code: 'ERR_IPC_DAEMON_EXITED' });
    expect(seen).toEqual([expect.objectContaining({ code: 'ERR_IPC_DAEMON_EXITED', autoStart: { state: 'failed', durationMs: expect.any(Number) } })]);
  });

  it('start errors lead with their cause', async () => {
    const s = setup();
    const logFile = path.join(s.dir, 'no-such-dir', 'daemon.log');
    const error = (await sendCommand(s.socket, 'pid', { autoStart: { ...s.daemon(), logFile } }).catch((e: unknown) => e)) as DaemonStartError;
    expect(error.code).toBe('ERR_IPC_DAEMON_SPAWN_FAILED');
    expect(error.message).toMatch(new RegExp(`^cannot open the daemon's logFile '${logFile}': ENOENT`));
    const missing = path.join(s.dir, 'no-such-program');
    const spawnError = (await ensureDaemon(s.socket, { command: missing }).catch((e: unknown) => e)) as DaemonStartError;
    expect(spawnError.code).toBe('ERR_IPC_DAEMON_SPAWN_FAILED');
    expect(spawnError.message).toMatch(/^spawn .*no-such-program ENOENT/);
    expect(daemonPids(s.records)).toEqual([]);
  });
});

describe('version-aware start', () => {
  it('a client that needs another version replaces the running daemon, and a client loop loses nothing', { timeout: 120000 }, async () => {
    const s = setup();
    const log = (v: string) => path.join(s.dir, `${v}.log`);
    const daemon = (v: string) => ({ command: process.execPath, args: [VERSIONED, s.socket, v, 'versioned'], logFile: log(v), maxWaitMs: 30000, version: v });
    expect((await sendCommand(s.socket, 'version', { autoStart: daemon('v1') })).toString()).toBe('v1');
    const v1 = Number((await sendCommand(s.socket, 'pid')).toString());
    onCleanup(() => (alive(v1) ? process.kill(v1, 'SIGKILL') : undefined));
    // The same version: found running, nothing started.
    expect((await sendCommand(s.socket, 'pid', { autoStart: daemon('v1') })).toString()).toBe(String(v1));

    const answers: string[] = [];
    const failures: string[] = [];
    // Each loop's own answers in order: across loops a v1 answer may land
    // after another loop's first v2 (v1 still serves what it accepted).
    const perLoop: string[][] = [];
    let stop = false;
    const loops = Array.from({ length: 4 }, async () => {
      const mine: string[] = [];
      perLoop.push(mine);
      while (!stop) {
        await sendCommand(s.socket, 'version').then(
          (r) => (answers.push(r.toString()), mine.push(r.toString())),
          (e: { code: string }) => failures.push(e.code),
        );
      }
    });
    while (answers.length < 50) await new Promise((r) => setTimeout(r, 5));
    expect((await sendCommand(s.socket, 'version', { autoStart: daemon('v2') })).toString()).toBe('v2');
    const atSwitch = answers.length;
    while (answers.length < atSwitch + 50) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await Promise.all(loops);
    const v2 = Number((await sendCommand(s.socket, 'pid')).toString());
    onCleanup(() => (alive(v2) ? process.kill(v2, 'SIGKILL') : undefined));
    expect(v2).not.toBe(v1);
    await waitFor(() => !alive(v1), 10000, 'v1 to exit');
    console.log(`version replacement: ${answers.length} answered (${answers.filter((a) => a === 'v1').length} by v1), ${failures.length} failed`);
    expect(failures).toEqual([]);
    // A loop that reached v2 never goes back to v1: the path leads to v2 now.
    expect(answers).toContain('v2');
    for (const mine of perLoop) {
      const firstV2 = mine.indexOf('v2');
      if (firstV2 >= 0) expect(mine.slice(firstV2).every((a) => a === 'v2')).toBe(true);
    }
    // Nothing but requests went over the wire: v1 saw its clients' requests
    // and Git's quit, nothing about versions.
    expect(fs.readFileSync(log('v1'), 'utf8')).toMatch(/requests \["pid","quit","version"\]\nclosed quit/);
    await sendCommand(s.socket, 'quit');
    await waitFor(() => !alive(v2), 10000, 'v2 to exit');
    expect(fs.existsSync(`${s.socket}.version`)).toBe(false);
  });
});

