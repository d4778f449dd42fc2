// Nothing left behind after close or exit, ref/unref, `await using`
// (IpcServer is an async disposable, as Node's own handles are, and its
// types say so), worker threads (the addon is context-aware).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, expectTypeOf, it } from 'vitest';

import { createServer, getActiveState, sendCommand, streamCommand, type IpcServer } from '../../dist/index.js';
import { exited, fdCount, fixtures, socketPath, spawnNode, tempDir, threadCount, waitFor, waitForLine } from '../helpers';

const child = path.join(fixtures, 'lifecycle-child.js');

describe('no descriptor or thread left after close', () => {
  it('counts in /proc/self/fd and /proc/self/task are back after a busy server closes', async () => {
    // Warm up: the client I/O thread lives for the whole environment.
    const warm = socketPath();
    const w = await createServer(warm, () => 'x');
    await sendCommand(warm, 'x');
    await w.close();
    await sleep(50);
    const fds = fdCount();
    const threads = threadCount();

    const p = socketPath();
    const server = await createServer(p, (r) => r, { threads: 8 });
    expect(threadCount()).toBeGreaterThanOrEqual(threads + 8); // 8 serving threads
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 100; i++) await sendCommand(p, `req ${i}`);
    }));
    // A conversation in progress and idle connections at close time.
    const streaming = (async () => {
      try {
        for await (const chunk of streamCommand(p, 'x')) void chunk;
      } catch {
        /* dropped by close: fine */
      }
    })();
    await server.close({ timeoutMs: 100 });
    await streaming;
    await waitFor(() => fdCount() === fds && threadCount() === threads, 5000, 'fds and threads back to the start');
    expect(fdCount()).toBe(fds);
    expect(threadCount()).toBe(threads);
  });

  it('a failed start leaves nothing either', async () => {
    const p = socketPath();
    const first = await createServer(p, () => 'x');
    await sleep(20);
    const fds = fdCount();
    const threads = threadCount();
    for (let i = 0; i < 5; i++) await expect(createServer(p, () => 'x')).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // The live-server probe's connection to `first` is closed by `first`
    // once it sees the hang-up, which may trail the rejection a little.
    await waitFor(() => fdCount() === fds, 5000, 'fds back to the start');
    expect(fdCount()).toBe(fds);
    expect(threadCount()).toBe(threads);
    await first.close();
  });
});

describe('process exit', () => {
  it.each(['exit', 'unref', 'throw'])('a child that ends (%s) with a running server leaves no socket file', async (mode) => {
    const p = socketPath();
    const proc = spawnNode(child, [p, mode]);
    await waitForLine(proc, /listening pong/);
    const code = await exited(proc);
    expect(code).toBe(mode === 'throw' ? 1 : 0);
    expect(fs.existsSync(p)).toBe(false);
    expect(fs.existsSync(`${p}.lock`)).toBe(false);
  });

  it('an unref()d server lets the process exit; a ref()d one keeps it alive', async () => {
    const p = socketPath();
    const proc = spawnNode(child, [p, 'ref']);
    await waitForLine(proc, /listening pong/);
    await sleep(500);
    expect(proc.exitCode).toBe(null);
    expect(await getActiveState(p)).toBe('listening');
    proc.kill('SIGTERM');
    await exited(proc);
  });
});

describe('Symbol.asyncDispose', () => {
  it('IpcServer is typed as AsyncDisposable', () => {
    expectTypeOf<IpcServer>().toMatchTypeOf<AsyncDisposable>();
  });

  it('`await using` closes the server at the end of the block, removing its socket file', async () => {
    const p = socketPath();
    {
      await using server = await createServer(p, () => 'in scope');
      expect(server.path).toBe(p);
      expect(await getActiveState(p)).toBe('listening');
    }
    expect(await getActiveState(p)).toBe('not-listening');
    expect(fs.existsSync(p)).toBe(false);
  });
});

describe('worker threads', () => {
  it('a worker that exits with its server running removes the socket file', async () => {
    const p = socketPath();
    const proc = spawnNode(child, [p, 'worker']);
    await exited(proc);
    expect(proc.output()).toContain('worker listening pong');
    expect(proc.output()).toContain('socket removed');
  });

  it('servers and clients in several worker threads at once', async () => {
    const dir = tempDir();
    const script = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { createServer, sendCommand } = require(${JSON.stringify(path.resolve('dist/index.js'))});
      (async () => {
        const own = workerData.dir + '/w' + workerData.index + '.ipc';
        const server = await createServer(own, (r) => 'w' + workerData.index + ':' + r, { threads: 2 });
        parentPort.postMessage({ ready: true });
        await new Promise((resolve) => parentPort.once('message', resolve));
        // Each worker talks to every other worker's server.
        let ok = 0;
        for (let i = 0; i < 50; i++) {
          const target = i % workerData.count;
          const reply = (await sendCommand(workerData.dir + '/w' + target + '.ipc', 'm' + i)).toString();
          if (reply === 'w' + target + ':m' + i) ok++;
        }
        parentPort.postMessage({ ok });
        await new Promise((resolve) => parentPort.once('message', resolve));
        await server.close();
        parentPort.postMessage({ closed: true });
      })().catch((e) => parentPort.postMessage({ error: String(e) }));
    `;
    const count = 4;
    const workers = Array.from({ length: count }, (_, index) => new Worker(script, { eval: true, workerData: { dir, index, count } }));
    const next = (w: Worker) => new Promise<Record<string, unknown>>((resolve) => w.once('message', resolve));
    expect(await Promise.all(workers.map(next))).toEqual(Array(count).fill({ ready: true }));
    workers.forEach((w) => w.postMessage('go'));
    expect(await Promise.all(workers.map(next))).toEqual(Array(count).fill({ ok: 50 }));
    workers.forEach((w) => w.postMessage('close'));
    expect(await Promise.all(workers.map(next))).toEqual(Array(count).fill({ closed: true }));
    await Promise.all(workers.map((w) => w.terminate()));
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('terminating busy workers at random moments never brings the process down', async () => {
    const dir = tempDir();
    const script = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { createServer, sendCommand, streamCommand } = require(${JSON.stringify(path.resolve('dist/index.js'))});
      (async () => {
        const p = workerData.dir + '/t' + workerData.round + '.ipc';
        await createServer(p, async (r, reply) => { await reply.write('x'.repeat(100)); return r; }, { threads: 2 });
        parentPort.postMessage('ready');
        // Server events, client completions and streamed chunks in flight
        // at every moment, until the worker is terminated.
        for (;;) {
          await Promise.all([
            ...Array.from({ length: 8 }, (_, i) => sendCommand(p, 'm' + i).catch(() => {})),
            (async () => { try { for await (const c of streamCommand(p, 's')) void c; } catch {} })(),
          ]);
        }
      })();
    `;
    for (let round = 0; round < 12; round++) {
      const worker = new Worker(script, { eval: true, workerData: { dir, round } });
      // A worker that fails to start says why, instead of leaving the test
      // waiting for its 'ready'.
      await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`worker of round ${round} exited (${code}) before it was ready`)));
      });
      await sleep(round * 7);
      await worker.terminate();
    }
    await waitFor(() => fs.readdirSync(dir).length === 0, 5000, 'every socket file to be removed');
  }, 60000);

  it('terminating a worker mid-conversation stops its server cleanly', async () => {
    const p = socketPath();
    const script = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { createServer } = require(${JSON.stringify(path.resolve('dist/index.js'))});
      createServer(workerData.p, async (r, reply) => { await reply.write('started'); await new Promise(() => {}); })
        .then(() => parentPort.postMessage('ready'));
    `;
    const worker = new Worker(script, { eval: true, workerData: { p } });
    await new Promise((resolve) => worker.once('message', resolve));
    const stream = streamCommand(p, 'x');
    expect((await stream.next()).value!.toString()).toBe('started');
    await worker.terminate();
    await expect(stream.next()).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    expect(fs.existsSync(p)).toBe(false);
  });
});
