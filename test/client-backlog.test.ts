// A full listen backlog is a live server: the client waits for it (as
// Git's blocking connect() does) for as long as the exchange may last,
// not only connectTimeoutMs. Servers run in child processes, so that
// stopping them never stops the clients.
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { sendCommand } from '../dist/index.js';
import { fixtures, socketPath, spawnNode, waitForLine } from './helpers';

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
