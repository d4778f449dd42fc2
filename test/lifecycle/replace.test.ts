// replace: a new daemon takes the path over from the running one (an
// upgrade), while a client keeps sending.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { connect, createServer, QUIT, sendCommand } from '../../dist/index.js';
import { exited, fixtures, onCleanup, socketPath, spawnNode, waitForLine } from '../helpers.js';

const DAEMON = path.join(fixtures, 'versioned-daemon.js');

function startDaemon(p: string, version: string, replace = false) {
  return spawnNode(DAEMON, [p, version, ...(replace ? ['replace'] : [])]);
}

describe('replace', () => {
  it('a client loop running across a replacement loses no request: v1 answers, then v2', { timeout: 120000 }, async () => {
    const p = socketPath();
    const v1 = startDaemon(p, 'v1');
    await waitForLine(v1, /^listening/, 20000);

    const answers: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          answers.push((await sendCommand(p, 'version')).toString());
        } catch (error) {
          failures.push(`${(error as { code?: string }).code}`);
        }
      }
    })();
    // Some requests to v1 first.
    while (answers.length < 20 && failures.length === 0) await new Promise((r) => setTimeout(r, 5));

    const v2 = startDaemon(p, 'v2', true);
    await waitForLine(v2, /^listening/, 30000);
    expect(await exited(v1)).toBe(0);
    expect(v1.output()).toContain('closed quit');
    const atSwitch = answers.length;
    while (answers.length < atSwitch + 20 && failures.length < 1000) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await loop;

    console.log(`replacement: ${answers.length} requests answered (${answers.filter((a) => a === 'v1').length} by v1), ${failures.length} lost: ${failures.join(', ')}`);
    expect(failures).toEqual([]);
    // In order: v1 until the switch, v2 after.
    const firstV2 = answers.indexOf('v2');
    expect(firstV2).toBeGreaterThan(0);
    expect(answers.slice(firstV2).every((a) => a === 'v2')).toBe(true);
    await sendCommand(p, 'quit');
    expect(await exited(v2)).toBe(0);
  });

  it('8 client loops across 20 replacements, beside two CPU burners: no request lost', { timeout: 120000 }, async () => {
    const p = socketPath();
    const burners = [0, 1].map(() => spawnNode(path.join(fixtures, 'cpu-burner.js')));
    let current = startDaemon(p, 'v0');
    await waitForLine(current, /^listening/, 20000);

    const failures: string[] = [];
    let answered = 0;
    let stop = false;
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          await sendCommand(p, 'version');
          answered++;
        } catch (error) {
          failures.push(`${(error as { code?: string }).code}: ${(error as Error).message}`);
        }
      }
    });
    const started = performance.now();
    for (let v = 1; v <= 20; v++) {
      const next = startDaemon(p, `v${v}`, true);
      await waitForLine(next, /^listening/, 30000);
      expect(await exited(current)).toBe(0);
      // 'stolen' when its path check saw the rename before the quit arrived.
      expect(current.output()).toMatch(/closed (quit|stolen)/);
      current = next;
    }
    stop = true;
    await Promise.all(loops);
    const seconds = (performance.now() - started) / 1000;
    for (const b of burners) b.kill('SIGKILL');
    console.log(`20 replacements in ${seconds.toFixed(1)} s, 8 client loops: ${answered} answered, ${failures.length} failed${failures.length ? `: ${failures.slice(0, 5).join('; ')}` : ''}`);
    expect(failures).toEqual([]);
    await sendCommand(p, 'quit');
    expect(await exited(current)).toBe(0);
  });

  it('connections the old server accepted before the replacement are served by it', async () => {
    const p = socketPath();
    const old = await createServer(p, (request) => (request.toString() === 'quit' ? QUIT : `old ${request}`));
    onCleanup(() => old.close({ force: true }));
    // Connected to the old server, requests not sent yet: when the quit
    // arrives they are accepted (or queued) but unread.
    const early = await Promise.all([1, 2, 3, 4].map(() => connect(p)));
    const replacement = await createServer(p, (request) => `new ${request}`, { replace: true });
    onCleanup(() => replacement.close({ force: true }));
    expect((await sendCommand(p, 'x')).toString()).toBe('new x');
    const answers = await Promise.all(early.map((c, i) => c.send(`${i}`).then((r) => r.toString(), (e: { code: string }) => e.code)));
    expect(answers).toEqual(['old 0', 'old 1', 'old 2', 'old 3']);
    expect(await old.closed).toBe('quit');
  });

  it('starts normally when nothing runs, and replaces a server in this process', async () => {
    const p = socketPath();
    const first = await createServer(p, () => 'first', { replace: true });
    onCleanup(() => first.close({ force: true }));
    expect((await sendCommand(p, 'x')).toString()).toBe('first');
    // The application's own quit request.
    let asked = '';
    first.close({ force: true }).catch(() => {});
    await first.closed;
    const second = await createServer(p, (request) => {
      asked = request.toString();
      return QUIT;
    });
    const third = await createServer(p, () => 'third', { replace: { request: 'please stop', timeoutMs: 5000 } });
    onCleanup(() => third.close({ force: true }));
    expect(asked).toBe('please stop');
    expect(await second.closed).toBe('quit');
    expect((await sendCommand(p, 'x')).toString()).toBe('third');
  });

  it('takes the path from a server that ignores the quit request; that server then stops (stolen)', async () => {
    const p = socketPath();
    const stubborn = await createServer(p, () => 'still here');
    onCleanup(() => stubborn.close({ force: true }));
    const replacement = await createServer(p, () => 'new', { replace: { timeoutMs: 3000 } });
    onCleanup(() => replacement.close({ force: true }));
    expect((await sendCommand(p, 'x')).toString()).toBe('new');
    expect(await stubborn.closed).toBe('stolen');
    // It left our socket file alone.
    expect((await sendCommand(p, 'x')).toString()).toBe('new');
  });

  it('keeps socketMode, and leaves no temporary name behind', async () => {
    const p = socketPath();
    const old = await createServer(p, () => QUIT);
    const replacement = await createServer(p, () => 'new', { replace: true, socketMode: 0o600 });
    onCleanup(() => replacement.close({ force: true }));
    expect(await old.closed).toBe('quit');
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(p))).toEqual([path.basename(p)]);
    await replacement.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('checks the option synchronously', () => {
    const p = socketPath();
    expect(() => createServer(p, () => 'x', { replace: 'yes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createServer(p, () => 'x', { replace: { timeoutMs: -1 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => createServer(p, () => 'x', { replace: { request: 5 as never } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => createServer(p, () => 'x', { replace: true, listenFd: 3 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });
});
