// A server killed (SIGKILL) mid-response: the client gets an error, never a
// partial success; the stale path it leaves is taken by the next server.
// The killed servers run in child processes.
import * as fs from 'node:fs';
import { describe, expect, test } from 'vitest';

import { getActiveState, sendCommand, streamCommand } from '../../dist/index.js';
import { exited, socketPath, waitFor } from '../helpers';
import { startServerChild } from '../server-child';
import { serve } from '../servers';

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
    pending.catch(() => {}); // awaited below; if the wait fails first, no unhandled rejection
    // Killed once 'slow' is being answered (the stats request is the other one).
    await waitFor(async () => JSON.parse((await sendCommand(path2, 'serverstats')).toString()).connections.beingAnswered >= 2, 20000, "'slow' to be answered");
    server2.child.kill('SIGKILL');
    await expect(pending).rejects.toMatchObject({ code: 'ERR_IPC_INCOMPLETE_RESPONSE' });
  });

  // The next server in a child of its own, or in this process (its path check and takeover run there).
  const nextServers: Array<[string, (path: string, killedPid: number) => Promise<() => Promise<void>>]> = [
    [
      'in a child process',
      async (path, killedPid) => {
        const next = await startServerChild(path);
        expect(next.pid).not.toBe(killedPid);
        expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
        // A fresh server: the ping above is the one request it has answered.
        const stats = JSON.parse((await sendCommand(path, 'serverstats')).toString());
        expect(stats.requests).toBe(1);
        return async () => {
          next.child.kill('SIGTERM');
          await next.waitEvent((e) => e.event === 'close');
        };
      },
    ],
    [
      'in this process',
      async (path) => {
        const next = await serve(path, () => 'new');
        expect((await sendCommand(path, 'x')).toString()).toBe('new');
        return () => next.close();
      },
    ],
  ];

  test.each(nextServers)('a server %s restarts on the stale path left by a killed one', async (_where, restart) => {
    const path = socketPath();
    const first = await startServerChild(path);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    first.child.kill('SIGKILL');
    await exited(first.child);
    // The socket file is left behind, with nobody listening.
    expect(fs.lstatSync(path).isSocket()).toBe(true);
    expect(await getActiveState(path)).toBe('not-listening');
    await expect(sendCommand(path, 'ping', { waitIfBusy: false })).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const stop = await restart(path, first.pid);
    await stop();
    expect(fs.existsSync(path)).toBe(false);
  });
});
