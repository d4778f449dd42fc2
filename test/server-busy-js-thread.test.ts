// A busy JS thread must never make the server refuse, lose or stop
// policing clients: the native serving threads accept, read, enforce
// deadlines and wait (docs/design.md#the-posix-server). The server runs in
// a child process whose handler blocks its JS thread on request.
import * as net from 'node:net';

import { describe, expect, it } from 'vitest';

import { sendCommand } from '../dist/index.js';
import { startServerChild } from './hardening-helpers';
import { socketPath, waitFor } from './helpers';

const posix = process.platform !== 'win32';

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

describe.runIf(posix)('a server whose JS thread is busy', () => {
  it('accepts and later answers 500 clients, and still drops a silent one at requestTimeoutMs', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { requestTimeoutMs: 1000 });
    const busyStart = Date.now();
    const busy = sendCommand(path, 'busy:2000');
    await new Promise((r) => setTimeout(r, 100)); // the handler has started
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
    await new Promise((r) => setTimeout(r, 100));
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
