// Stopping (docs/protocol.md#stopping): QUIT, a stopping server refuses new
// connections at once, its grace is bounded, close() keeps to its deadline,
// close() racing a stop of the server's own, and an idle server stops by
// itself without losing a request it accepted.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, test } from 'vitest';

import { createServer, getActiveState, QUIT, sendCommand, streamCommand, type HandlerResult } from '../../dist/index.js';
import { bigRow } from '../../dist/test-app.js';
import { exited, fixtures, onCleanup, posix, repoRoot, socketPath, spawnNode, waitFor } from '../helpers';
import { encode, rawExchange } from '../raw-peers';
import { handlersRunning, hangingServer } from '../servers';

describe('QUIT', () => {
  it('answers with the bare flush, finishes running conversations, stops and removes the socket', async () => {
    const p = socketPath();
    const server = await createServer(
      p,
      async (request, reply) => {
        if (request.toString() === 'quit') return QUIT;
        for (let row = 0; row < 50; row++) {
          await reply.write(bigRow(row));
          await sleep(10);
        }
      },
      { threads: 2 },
    );
    const slow = (async () => {
      let rows = 0;
      for await (const chunk of streamCommand(p, 'slow')) rows += chunk.toString().split('\n').length - 1;
      return rows;
    })();
    slow.catch(() => {}); // awaited below; if the quit exchange fails first, no unhandled rejection
    await handlersRunning(server); // the conversation is running when the quit comes
    expect((await rawExchange(p, encode('quit'))).toString()).toBe('0000');
    expect(await server.closed).toBe('quit');
    expect(await slow).toBe(50); // the conversation in progress was finished
    expect(fs.existsSync(p)).toBe(false);
    expect(await getActiveState(p)).toBe('not-listening');
  }, 30000);

  it('a handler may return QUIT after writing', async () => {
    const p = socketPath();
    // The annotation: TypeScript widens `typeof QUIT` to `symbol` in the
    // inferred result of an async arrow whose only return is QUIT.
    const server = await createServer(p, async (_r, reply): Promise<HandlerResult> => {
      await reply.write('bye');
      return QUIT;
    });
    expect((await sendCommand(p, 'x')).toString()).toBe('bye');
    expect(await server.closed).toBe('quit');
  });
});

describe.runIf(posix)('a stopping server', () => {
  it('after QUIT with a handler that never settles: refuses new clients at once, then stops after closeTimeoutMs', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { closeTimeoutMs: 800 });
    const hanging = sendCommand(p, 'hang').catch((e: { code: string }) => e.code);
    await handlersRunning(server);
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
    await handlersRunning(server);
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
    await server.close({ force: true });
    await hanging;
  }, 30000);

  it('close({ timeoutMs }) ends at the deadline, not at the next 50 ms tick', async () => {
    // The fastest of a few tries: a loaded machine can delay any one of them.
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const p = socketPath();
      const server = await hangingServer(p);
      const hanging = sendCommand(p, 'hang').catch(() => undefined);
      await handlersRunning(server);
      const started = process.hrtime.bigint();
      await server.close({ timeoutMs: 5 });
      best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
      await hanging;
    }
    expect(best).toBeLessThan(40);
  }, 30000);
});

describe('close() racing a stop of the server\'s own', () => {
  test('close() called while a quit is stopping the server never crashes the process', async () => {
    // Before the fix, Stop() after the server thread had finished used a
    // destroyed poller: a segfault of the whole process.
    const child = spawnNode(path.join(fixtures, 'quit-close-race.js'), [socketPath(), '150']);
    expect(await exited(child)).toBe(0);
    expect(child.output()).toContain('done');
  });
});

describe.runIf(posix)('idleTimeoutMs', () => {
  it("an open conversation holds the idle stop off; its end starts the clock; then it stops with 'idle' and removes its path", async () => {
    const idle = 300;
    const p = socketPath();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = await createServer(
      p,
      async (request) => {
        if (request.toString() === 'wait') await released;
        return 'pong';
      },
      { idleTimeoutMs: idle, threads: 1 },
    );
    onCleanup(() => server.close({ timeoutMs: 0 }));
    let closedAt = 0;
    void server.closed.then(() => (closedAt = performance.now()));
    const waiting = sendCommand(p, 'wait');
    waiting.catch(() => {}); // awaited below
    await handlersRunning(server);
    // Held for over three idle timeouts (a late wake-up only holds it
    // longer): the server must still be there, and serving.
    await sleep(3 * idle + 100);
    expect(closedAt).toBe(0);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    expect(closedAt).toBe(0);
    const releasedAt = performance.now();
    release();
    expect((await waiting).toString()).toBe('pong');
    // A probe (connect, hang up) makes the one serving thread look at the
    // idle clock now: one that did not restart at the last close would
    // stop the server at once, not by chance at a later wake-up.
    expect(await getActiveState(p)).toBe('listening');
    expect(await server.closed).toBe('idle');
    // The idle clock started when that conversation ended, after the
    // release (the server's clock counts whole milliseconds: up to 1 ms early).
    expect(closedAt - releasedAt).toBeGreaterThan(idle - 1);
    expect(fs.existsSync(p)).toBe(false);
  }, 20000);

  it('a client arriving around the deadline is either answered or finds no server: never a lost request', async () => {
    const p = socketPath();
    const server = await hangingServer(p, { idleTimeoutMs: 150 });
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    let answered = 1; // the ping above
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
    // Every request that reached the handler was answered (none was lost
    // between the handler and the client), and no other did.
    expect(server.stats().requests).toBe(answered);
    // Refused or no socket file: never an accepted request without a reply.
    for (const f of failures) expect(f).toMatch(/^(ENOENT\/path-not-found|ECONNREFUSED\/not-listening)$/);
  }, 60000);
});
