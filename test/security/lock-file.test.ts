// `<path>.lock` against another local user (docs/security.md#files-beside-the-socket):
// opened without following a symlink or waiting on a FIFO, and never taken
// over (removed) unless it is a regular file of ours.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { createServer, type IpcError } from '../../dist/index.js';
import { onCleanup } from '../helpers';
import { cannotSwitchUser, doAsOther, OTHER_UID, territory } from './other-user';

/** createServer's outcome, or 'hung' if it has not settled within `ms`. */
async function startOutcome(socket: string, ms: number): Promise<string> {
  const start = createServer(socket, () => 'pong', { threads: 1 }).then(
    (server) => {
      onCleanup(() => server.close({ force: true }));
      return 'started';
    },
    (error: IpcError) => error.code ?? String(error),
  );
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  const outcome = await Promise.race([start, hung]);
  clearTimeout(timer);
  return outcome;
}

describe.skipIf(cannotSwitchUser !== null)('lock file against another user', () => {
  test('a FIFO at <path>.lock does not hang createServer (finding 3)', async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'app.ipc');
    doAsOther(`require('node:child_process').execFileSync('mkfifo', [process.argv[1]])`, [`${socket}.lock`]);
    // If a start hangs on the FIFO, a writer that opens and closes it lets
    // the stuck pool thread go after the test.
    onCleanup(() => {
      try {
        fs.closeSync(fs.openSync(`${socket}.lock`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // nobody reading: nothing is stuck
      }
    });
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map(() => startOutcome(socket, 10000)));
    expect(outcomes).toEqual(Array(5).fill('ERR_IPC_UNSAFE_FILE'));
    // The pool is free: fs.promises still answers.
    await fs.promises.stat(shared);
    expect(fs.lstatSync(`${socket}.lock`).isFIFO()).toBe(true);
  });

  test("another user's stale lock is not removed (finding 7)", async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'app.ipc');
    // Empty and 60 s old: ours would be taken over as stale.
    doAsOther(
      `const fs = require('node:fs'); fs.writeFileSync(process.argv[1], ''); const t = Date.now() / 1000 - 60; fs.utimesSync(process.argv[1], t, t)`,
      [`${socket}.lock`],
    );
    expect(await startOutcome(socket, 10000)).toBe('ERR_IPC_UNSAFE_FILE');
    expect(fs.lstatSync(`${socket}.lock`).uid).toBe(OTHER_UID);
  });

  test('a symlink at <path>.lock is not followed, and nothing it points to is touched', async () => {
    const { root, shared } = territory();
    const target = path.join(root, 'target');
    fs.writeFileSync(target, 'root data\n', { mode: 0o600 });
    const socket = path.join(shared, 'app.ipc');
    doAsOther(`require('node:fs').symlinkSync(process.argv[1], process.argv[2])`, [target, `${socket}.lock`]);
    expect(await startOutcome(socket, 10000)).toBe('ERR_IPC_UNSAFE_FILE');
    expect(fs.readFileSync(target, 'utf8')).toBe('root data\n');
    expect(fs.lstatSync(`${socket}.lock`).isSymbolicLink()).toBe(true);
  });
});

// ensureDaemon in a child process (as root): prints {state} or {code};
// 'hung' if its JS thread is frozen. The daemon it starts serves `socket`.
const ENSURE = `
  const { ensureDaemon } = require(process.argv[1]);
  const [dist, socket] = process.argv.slice(1);
  const daemon = 'require(' + JSON.stringify(dist) + ').createServer(' + JSON.stringify(socket) + ', () => "pong", { idleTimeoutMs: 2000 })';
  ensureDaemon(socket, { command: process.execPath, args: ['-e', daemon], maxWaitMs: 20000 }).then(
    (r) => console.log(JSON.stringify({ state: r.state })),
    (e) => console.log(JSON.stringify({ code: e.code })),
  );
`;

async function ensureInChild(socket: string): Promise<{ state?: string; code?: string; hung?: true }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', ENSURE, path.join(__dirname, '..', '..', 'dist', 'index.js'), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ hung: true }), 30000);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out.trim() === '' ? { hung: true } : JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

describe.skipIf(cannotSwitchUser !== null)("ensureDaemon's start lock against another user", () => {
  test('a FIFO at <path>.start.lock neither freezes the caller nor stops the start', async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'd.ipc');
    doAsOther(`require('node:child_process').execFileSync('mkfifo', [process.argv[1]])`, [`${socket}.start.lock`]);
    expect(await ensureInChild(socket)).toEqual({ state: 'started' });
    expect(fs.lstatSync(`${socket}.start.lock`).isFIFO()).toBe(true);
  });

  test("another user's old start lock is left alone and the daemon still starts", async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'd.ipc');
    doAsOther(
      `const fs = require('node:fs'); fs.writeFileSync(process.argv[1], ''); const t = Date.now() / 1000 - 60; fs.utimesSync(process.argv[1], t, t)`,
      [`${socket}.start.lock`],
    );
    expect(await ensureInChild(socket)).toEqual({ state: 'started' });
    expect(fs.lstatSync(`${socket}.start.lock`).uid).toBe(OTHER_UID);
  });
});
