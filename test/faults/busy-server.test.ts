// A server that cannot answer for a while. A busy JS thread must never make
// the server refuse, lose or stop policing clients: the native serving
// threads accept, read, enforce deadlines and wait
// (docs/design.md#the-posix-server); the server runs in a child process
// whose handler blocks its JS thread on request. And a full listen backlog
// is a live server: the client waits for it (as Git's blocking connect()
// does) for as long as the exchange may last, not only connectTimeoutMs;
// those servers run in child processes, so that stopping them never stops
// the clients.
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { sendCommand } from '../../dist/index.js';
import { fixtures, posix, socketPath, spawnNode, waitFor, waitForLine } from '../helpers';
import { startServerChild } from '../server-child';

// Connects and sends nothing; resolves with the time the server closed it.
function silentClient(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    socket.on('error', reject);
    socket.on('data', () => reject(new Error('a silent client got data')));
    socket.on('close', () => resolve(Date.now()));
  });
}

async function settleAll(promises: Promise<Buffer>[]): Promise<{ ok: number; errors: string[] }> {
  const results = await Promise.allSettled(promises);
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as { code?: string }).code ?? r.reason)] : []));
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value.toString() === 'pong').length;
  return { ok, errors };
}

type Outcome = { ok: true; text: string } | { ok: false; code: string };

function ask(p: string, request: string, options: Parameters<typeof sendCommand>[2] = {}): Promise<Outcome> {
  return sendCommand(p, request, options).then(
    (response): Outcome => ({ ok: true, text: response.toString() }),
    (error: { code: string }): Outcome => ({ ok: false, code: error.code }),
  );
}

function tally(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.ok ? o.text : o.code;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe.runIf(posix)('a server whose JS thread is busy', () => {
  it('accepts and later answers 500 clients, and still drops a silent one at requestTimeoutMs', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { requestTimeoutMs: 1000 });
    const busyStart = Date.now();
    const busy = sendCommand(path, 'busy:2000');
    await server.waitEvent((e) => e.event === 'busy', 20000, 'the handler to start');
    const silent = silentClient(path);
    const clients = Array.from({ length: 500 }, () => sendCommand(path, 'ping', { timeoutMs: 60000 }));
    const silentClosedAt = await silent;
    const busyEnd = await busy.then(() => Date.now());
    const { ok, errors } = await settleAll(clients);
    expect(errors).toEqual([]);
    expect(ok).toBe(500);
    // Dropped by the native deadline while the JS thread was still busy.
    expect(silentClosedAt).toBeLessThan(busyEnd);
    expect(silentClosedAt - busyStart).toBeGreaterThanOrEqual(900);
    await server.waitEvent((e) => e.event === 'clientError' && e.code === 'ERR_IPC_REQUEST_TIMEOUT');
  }, 60000);

  it('with allowPeer, the request deadline does not run while the server has not let the client send', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { requestTimeoutMs: 1000, allowAll: true });
    const busy = sendCommand(path, 'busy:2000');
    await server.waitEvent((e) => e.event === 'busy', 20000, 'the handler to start');
    const clients = Array.from({ length: 50 }, () => sendCommand(path, 'ping', { timeoutMs: 60000 }));
    await busy;
    const { ok, errors } = await settleAll(clients);
    expect(errors).toEqual([]);
    expect(ok).toBe(50);
    expect(server.count('clientError')).toBe(0);
  }, 60000);

  it('a liveness probe never reaches allowPeer', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { allowAll: true });
    for (let i = 0; i < 5; i++) {
      // Git's probe: connect, then hang up without a byte.
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(path, () => s.end());
        s.on('error', reject);
        s.on('close', () => resolve());
      });
    }
    for (let i = 0; i < 3; i++) expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    // The child reports on stdout, which may trail the replies a little.
    await waitFor(() => server.count('peer') >= 3, 5000, 'three peer events');
    await new Promise((r) => setTimeout(r, 200));
    expect(server.count('peer')).toBe(3);
    expect(server.count('clientError')).toBe(0);
  }, 30000);
});

describe('a full listen backlog', () => {
  it('a server stopped (SIGSTOP) for 2.5 s answers all 200 clients that connected meanwhile', async () => {
    const p = socketPath();
    const server = spawnNode(path.join(fixtures, 'app-server.js'), [p]);
    await waitForLine(server, /listening/);
    server.kill('SIGSTOP');
    try {
      const answers = Array.from({ length: 200 }, () => ask(p, 'ping'));
      await sleep(2500);
      server.kill('SIGCONT');
      expect(tally(await Promise.all(answers))).toEqual({ pong: 200 });
    } finally {
      server.kill('SIGCONT');
    }
  });

  it('a server whose JS thread is busy for 3 s answers all 1000 clients that connected meanwhile', async () => {
    const p = socketPath();
    const server = spawnNode(path.join(fixtures, 'busy-server.js'), [p]);
    await waitForLine(server, /listening/);
    const busy = ask(p, 'busy 3000');
    await waitForLine(server, /busy/);
    const answers = Array.from({ length: 1000 }, () => ask(p, 'ping'));
    expect(tally(await Promise.all(answers))).toEqual({ pong: 1000 });
    expect(await busy).toEqual({ ok: true, text: 'done' });
  });

  it('still ends at the exchange timeout (timeoutMs) while the server stays stopped', async () => {
    const p = socketPath();
    const server = spawnNode(path.join(fixtures, 'app-server.js'), [p]);
    await waitForLine(server, /listening/);
    server.kill('SIGSTOP');
    try {
      // Fill the backlog (Git's 50) so that later connects see EAGAIN.
      const fillers = Array.from({ length: 80 }, () => ask(p, 'ping', { timeoutMs: 1500 }));
      const outcomes = await Promise.all(fillers);
      // Those that got into the backlog wait for the reply; the others
      // wait for room: all end at their own timeout, none as not-listening.
      expect(tally(outcomes)).toEqual({ ERR_IPC_TIMEOUT: 80 });
    } finally {
      server.kill('SIGCONT');
    }
  });
});
