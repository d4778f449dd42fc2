// Fault tests with real processes: a server killed mid-response and
// restarted on its stale path; the socket file deleted or replaced under
// a running server.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import { describe, expect, test } from 'vitest';

import { getActiveState, sendCommand, streamCommand } from '../dist/index.js';
import { exited, fixtures, onCleanup, socketPath, spawnNode } from './helpers';
import { startServerChild } from './hardening-helpers';

describe('server killed mid-response', () => {
  test('SIGKILL during a streamed response: the client gets an error, never a partial success', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    // 'slow' streams 1000 rows over about 10 s.
    const chunks: Buffer[] = [];
    let failure: (Error & { code?: string }) | undefined;
    const reading = (async () => {
      try {
        for await (const chunk of streamCommand(path, 'slow')) {
          chunks.push(chunk);
          if (chunks.length === 3) server.child.kill('SIGKILL');
        }
      } catch (error) {
        failure = error as Error & { code?: string };
      }
    })();
    await reading;
    expect(await exited(server.child)).toBe('SIGKILL');
    expect(failure).toBeDefined();
    expect(failure!.code).toBe('ERR_IPC_INCOMPLETE_RESPONSE');
    expect(chunks.length).toBeGreaterThan(0);

    // The whole-response client too.
    const path2 = socketPath('second.ipc');
    const server2 = await startServerChild(path2);
    const pending = sendCommand(path2, 'slow');
    setTimeout(() => server2.child.kill('SIGKILL'), 300);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
  });

  test('a server restarts on the stale path left by a killed one', async () => {
    const path = socketPath();
    const first = await startServerChild(path);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    first.child.kill('SIGKILL');
    await exited(first.child);
    // The socket file is left behind, with nobody listening.
    expect(fs.lstatSync(path).isSocket()).toBe(true);
    expect(await getActiveState(path)).toBe('not-listening');
    await expect(sendCommand(path, 'ping', { waitIfBusy: false })).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const second = await startServerChild(path);
    expect(second.pid).not.toBe(first.pid);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    const stats = JSON.parse((await sendCommand(path, 'stats')).toString());
    expect(stats.fds).toBeGreaterThan(0);
    second.child.kill('SIGTERM');
    await second.waitEvent((e) => e.event === 'close');
    expect(fs.existsSync(path)).toBe(false);
  });

  test('a server refuses the path of a live one and leaves it working', async () => {
    const path = socketPath();
    const first = await startServerChild(path);
    const second = startServerChild(path);
    await expect(second).rejects.toThrow(/EADDRINUSE/);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    first.child.kill('SIGTERM');
    await first.waitEvent((e) => e.event === 'close');
  });
});

describe('socket file stolen under a running server', () => {
  test('deleted: the server stops by itself within about a second', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    const started = Date.now();
    fs.unlinkSync(path);
    const close = await server.waitEvent((e) => e.event === 'close', 10000, 'close');
    const took = Date.now() - started;
    expect(close.reason).toBe('stolen');
    // docs/protocol.md#stolen-path: checked at least once a second. Generous bound for busy machines.
    expect(took).toBeLessThan(5000);
    expect(await exited(server.child)).toBe(0);
  });

  test('replaced by another socket: the server stops and does not remove the new file', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    fs.unlinkSync(path);
    const replacement = net.createServer((s) => s.end('mine'));
    await new Promise<void>((resolve) => replacement.listen(path, resolve));
    onCleanup(() => new Promise<void>((resolve) => replacement.close(() => resolve())));
    const started = Date.now();
    const close = await server.waitEvent((e) => e.event === 'close', 10000, 'close');
    expect(close.reason).toBe('stolen');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await exited(server.child)).toBe(0);
    // The new socket is still there and still answers.
    expect(fs.lstatSync(path).isSocket()).toBe(true);
    const answer = await new Promise<string>((resolve, reject) => {
      let data = '';
      const c = net.createConnection(path);
      c.on('data', (d) => (data += d));
      c.on('end', () => resolve(data));
      c.on('error', reject);
    });
    expect(answer).toBe('mine');
  });

  test('replaced by a regular file: the server stops and leaves the file alone', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    fs.unlinkSync(path);
    fs.writeFileSync(path, 'not a socket');
    const close = await server.waitEvent((e) => e.event === 'close', 10000, 'close');
    expect(close.reason).toBe('stolen');
    await exited(server.child);
    expect(fs.readFileSync(path, 'utf8')).toBe('not a socket');
  });
});

describe('close() racing a stop of the server\'s own', () => {
  test('close() called while a quit is stopping the server never crashes the process', async () => {
    // Before the fix, Stop() after the server thread had finished used a
    // destroyed poller: a segfault of the whole process.
    const child = spawnNode(nodePath.join(fixtures, 'quit-close-race.js'), [socketPath(), '150']);
    expect(await exited(child)).toBe(0);
    expect(child.output()).toContain('done');
  });
});
