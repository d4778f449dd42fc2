// closeOnSignals: a real daemon process gets SIGINT, SIGTERM or SIGHUP
// while it answers a request.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { getActiveState, sendCommand } from '../../dist/index.js';
import { exited, fixtures, posix, socketPath, spawnNode, waitFor, waitForLine } from '../helpers.js';

const DAEMON = path.join(fixtures, 'signal-daemon.js');

async function daemonAnswering(request: string, mode: string[] = []) {
  const socket = socketPath();
  const daemon = spawnNode(DAEMON, [socket, ...mode]);
  await waitForLine(daemon, /^listening$/);
  const answer = sendCommand(socket, request).then(
    (r) => r.toString(),
    (e: { code: string }) => e.code,
  );
  await waitFor(() => daemon.output().includes(`handling ${request}`), 30000, 'the request to reach the handler');
  return { socket, daemon, answer };
}

describe.skipIf(!posix)('closeOnSignals', () => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal}: the running request is answered, the socket file removed, the process ends by ${signal}`, { timeout: 60000 }, async () => {
      const { socket, daemon, answer } = await daemonAnswering('slow');
      daemon.kill(signal);
      expect(await answer).toBe('done');
      expect(await exited(daemon)).toBe(signal);
      expect(daemon.output()).toContain('closed close');
      expect(fs.existsSync(socket)).toBe(false);
    });
  }

  it('another SIGTERM listener: the server closes, the process carries on and exits by itself', { timeout: 60000 }, async () => {
    const { socket, daemon, answer } = await daemonAnswering('slow', ['own-listener']);
    daemon.kill('SIGTERM');
    expect(await answer).toBe('done');
    expect(await exited(daemon)).toBe(0);
    expect(daemon.output()).toContain('own listener');
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('a second signal drops a handler that does not finish, and still removes the socket file', { timeout: 60000 }, async () => {
    const { socket, daemon, answer } = await daemonAnswering('hang');
    daemon.kill('SIGTERM');
    // The first signal started the close: the server no longer accepts.
    await waitFor(async () => (await getActiveState(socket)) !== 'listening', 30000, 'the server to stop accepting');
    // The second one drops the handler at once, not when the grace
    // (closeTimeoutMs, 30 s by default) runs out: 10 s is a loaded
    // machine's margin and still sees that wait.
    const second = performance.now();
    daemon.kill('SIGTERM');
    expect(await exited(daemon)).toBe('SIGTERM');
    const exitMs = performance.now() - second;
    console.log(`second SIGTERM: the process ended ${exitMs.toFixed(0)} ms later`);
    expect(exitMs).toBeLessThan(10000);
    expect(await answer).toBe('ERR_IPC_INCOMPLETE_RESPONSE');
    expect(fs.existsSync(socket)).toBe(false);
  });
});
