// Stopping: a stopping server refuses new connections at once, its grace
// is bounded, close() keeps to its deadline, and an idle server stops by
// itself without losing a request it accepted (docs/protocol.md#stopping).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { createServer, getActiveState, QUIT, sendCommand, type IpcServer } from '../dist/index.js';
import { onCleanup, repoRoot, socketPath, waitFor } from './helpers';

const posix = process.platform !== 'win32';

// A server whose 'hang' requests are never answered.
async function hangingServer(p: string, options: Parameters<typeof createServer>[2] = {}): Promise<IpcServer> {
  const server = await createServer(
    p,
    (request) => {
      const command = request.toString();
      if (command === 'hang') return new Promise<never>(() => {});
      if (command === 'quit') return QUIT;
      return 'pong';
    },
    options,
  );
  onCleanup(() => server.close({ timeoutMs: 0 }));
  return server;
}

describe.runIf(posix)('a stopping server', () => {
  it('after QUIT with a handler that never settles: refuses new clients at once, then stops after closeTimeoutMs', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { closeTimeoutMs: 800 });
    const hanging = sendCommand(p, 'hang').catch((e: { code: string }) => e.code);
    await new Promise((r) => setTimeout(r, 100));
    const quitAt = Date.now();
    expect((await sendCommand(p, 'quit')).length).toBe(0);
    // The listener is shut as soon as the serving thread sees the quit.
    await waitFor(async () => (await getActiveState(p)) === 'not-listening', 2000, 'not-listening');
    const refused = await sendCommand(p, 'ping', { waitIfBusy: false }).catch((e: { code: string; state: string }) => e);
    expect(refused).toMatchObject({ code: 'ECONNREFUSED', state: 'not-listening' });
    expect(await server.closed).toBe('quit');
    expect(Date.now() - quitAt).toBeGreaterThanOrEqual(700);
    expect(await hanging).toBe('ERR_IPC_INCOMPLETE_RESPONSE');
    expect(fs.existsSync(p)).toBe(false);
  }, 20000);

  it("Git's stop-daemon (our CLI's, which follows it) returns promptly even while a handler hangs", async () => {
    const p = socketPath();
    const server = await hangingServer(p, { closeTimeoutMs: 30000 });
    const hanging = sendCommand(p, 'hang').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    // The CLI runs in a child: this test's JS thread must stay free to run
    // the server, so the child is waited for asynchronously.
    const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'cli.js'), 'stop-daemon', `--name=${p}`, '--max-wait=20'], { env });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('exit', (status) => resolve({ status, stderr }));
    });
    expect(result).toMatchObject({ status: 0 });
    expect(Date.now() - started).toBeLessThan(10000); // not the 30 s grace
    await server.close({ timeoutMs: 0 });
    await hanging;
  }, 30000);

  it('close({ timeoutMs }) ends at the deadline, not at the next 50 ms tick', async () => {
    // The fastest of a few tries: a loaded machine can delay any one of them.
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const p = socketPath();
      const server = await hangingServer(p);
      const hanging = sendCommand(p, 'hang').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
      const started = process.hrtime.bigint();
      await server.close({ timeoutMs: 5 });
      best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
      await hanging;
    }
    expect(best).toBeLessThan(40);
  }, 30000);
});

describe.runIf(posix)('idleTimeoutMs', () => {
  it("stops with 'idle' once nobody has been connected for that long, and removes its path", async () => {
    const p = socketPath();
    const server = await hangingServer(p, { idleTimeoutMs: 300 });
    for (let i = 0; i < 5; i++) {
      expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(fs.existsSync(p)).toBe(true); // activity kept it alive
    expect(await server.closed).toBe('idle');
    expect(fs.existsSync(p)).toBe(false);
  }, 20000);

  it('a client arriving around the deadline is either answered or finds no server: never a lost request', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { idleTimeoutMs: 150 });
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    let answered = 1;
    const failures: string[] = [];
    let stopped = false;
    void server.closed.then(() => (stopped = true));
    // Requests spaced close to the idle timeout, until the server is gone.
    for (let i = 0; i < 200 && !stopped; i++) {
      await new Promise((r) => setTimeout(r, 120 + (i % 40)));
      try {
        expect((await sendCommand(p, 'ping', { waitIfBusy: false })).toString()).toBe('pong');
        answered++;
      } catch (error) {
        failures.push(`${(error as { code: string }).code}/${(error as { state?: string }).state}`);
        break;
      }
    }
    expect(await server.closed).toBe('idle');
    expect(answered).toBeGreaterThan(0);
    // Refused or no socket file: never an accepted request without a reply.
    for (const f of failures) expect(f).toMatch(/^(ENOENT\/path-not-found|ECONNREFUSED\/not-listening)$/);
  }, 60000);
});

describe.runIf(posix)('stats()', () => {
  it('counts requests, bytes, drops and open connections', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { maxRequestBytes: 100 });
    for (let i = 0; i < 10; i++) await sendCommand(p, 'ping');
    await expect(sendCommand(p, 'x'.repeat(200))).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
    const hanging = sendCommand(p, 'hang').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const stats = server.stats();
    expect(stats.requests).toBe(10);
    expect(stats.dropped).toEqual({ protocol: 0, tooLarge: 1, timeout: 0, tooManyConnections: 0 });
    expect(stats.bytesOut).toBe(10 * 12); // "0008pong0000"
    expect(stats.bytesIn).toBeGreaterThanOrEqual(10 * 12);
    expect(stats.connections).toEqual({ open: 1, sending: 0, awaitingAllowPeer: 0, beingAnswered: 1 });
    expect(stats.handlerErrors).toBe(0);
    expect(stats.uptimeMs).toBeGreaterThan(0);
    await server.close({ timeoutMs: 0 });
    await hanging;
    const final = server.stats();
    expect(final.requests).toBe(10);
    expect(final.connections.open).toBe(0);
  }, 20000);
});
