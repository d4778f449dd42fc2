// examples/counter: the daemon and its command-line client, run as a
// user would run them (the client starts the daemon on demand).
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { alive, repoRoot, tempDir, waitFor } from './helpers.js';

const CLIENT = path.join(repoRoot, 'examples', 'counter', 'client.js');

function client(socket: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLIENT, ...args], { env: { ...process.env, COUNTER_SOCKET: socket, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('examples/counter', () => {
  it('the client starts the daemon once, keeps talking to it, and the daemon exits when idle', { timeout: 120000 }, async () => {
    const socket = path.join(tempDir(), 'counter.ipc');
    const idle = { COUNTER_IDLE_MS: '6000' };
    expect(await client(socket, ['incr', 'builds'], idle)).toMatchObject({ code: 0, stdout: '1\n' });
    expect(await client(socket, ['incr', 'builds'], idle)).toMatchObject({ code: 0, stdout: '2\n' });
    const stats = JSON.parse((await client(socket, ['stats'], idle)).stdout) as { pid: number; server: { requests: number }; counters: object };
    // Two answered before this one (stats() counts completed responses).
    expect(stats.server.requests).toBe(2);
    expect(stats.counters).toEqual({ builds: 2 });
    // Idle (idleTimeoutMs): it stops by itself.
    await waitFor(() => !alive(stats.pid), 60000, 'the idle daemon to exit');
    // quit does not start a daemon: nothing listens now.
    expect((await client(socket, ['quit'])).code).toBe(1);
  });
});
