// ensureDaemon's logFile against another local user (docs/security.md#files-beside-the-socket):
// never followed through a symlink, never waited on as a FIFO, never
// another user's file; created 0600. Each call runs in a child process
// (as root), so that a call that blocks its JS thread shows as 'hung'
// instead of freezing the test.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { onCleanup, repoRoot } from '../helpers';
import { cannotSwitchUser, doAsOther, OTHER_UID, territory } from './other-user';

// ensureDaemon(socket, { command, args, logFile }) in a child; prints its
// outcome as JSON: { code, logTail } or { state }.
const CALLER = `
  const { ensureDaemon } = require(process.argv[1]);
  const [socket, logFile, daemon] = process.argv.slice(2);
  ensureDaemon(socket, { command: process.execPath, args: ['-e', daemon], logFile, maxWaitMs: 20000 }).then(
    (r) => console.log(JSON.stringify({ state: r.state })),
    (e) => console.log(JSON.stringify({ code: e.code, logTail: e.logTail ?? null })),
  );
`;

// A daemon that prints a line and fails.
const FAILING_DAEMON = `console.log('daemon output'); process.exit(3)`;

function ensureInChild(socket: string, logFile: string, daemon = FAILING_DAEMON): Promise<{ code?: string; logTail?: string | null; state?: string; hung?: true }> {
  const child = spawn(process.execPath, ['-e', CALLER, path.join(repoRoot, 'dist', 'index.js'), socket, logFile, daemon], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onCleanup(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ hung: true });
    }, 30000);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out.trim() === '' ? { hung: true } : JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

describe.skipIf(cannotSwitchUser !== null)('ensureDaemon logFile against another user (finding 4)', () => {
  test('a FIFO at logFile: a coded error at once, no frozen caller', async () => {
    const { shared } = territory();
    const log = path.join(shared, 'daemon.log');
    doAsOther(`require('node:child_process').execFileSync('mkfifo', [process.argv[1]])`, [log]);
    expect(await ensureInChild(path.join(shared, 'd.ipc'), log)).toEqual({ code: 'ERR_IPC_UNSAFE_FILE', logTail: null });
  });

  test("a symlink at logFile: the file it points to is not written", async () => {
    const { root, shared } = territory();
    const target = path.join(root, 'root-only');
    fs.writeFileSync(target, 'root data\n', { mode: 0o600 });
    const log = path.join(shared, 'daemon.log');
    doAsOther(`require('node:fs').symlinkSync(process.argv[1], process.argv[2])`, [target, log]);
    expect((await ensureInChild(path.join(shared, 'd.ipc'), log)).code).toBe('ERR_IPC_UNSAFE_FILE');
    expect(fs.readFileSync(target, 'utf8')).toBe('root data\n');
  });

  test("another user's file at logFile: not written", async () => {
    const { shared } = territory();
    const log = path.join(shared, 'daemon.log');
    doAsOther(`require('node:fs').writeFileSync(process.argv[1], '', { mode: 0o666 })`, [log]);
    expect((await ensureInChild(path.join(shared, 'd.ipc'), log)).code).toBe('ERR_IPC_UNSAFE_FILE');
    expect(fs.statSync(log).size).toBe(0);
    expect(fs.statSync(log).uid).toBe(OTHER_UID);
  });

  test('a new log is created 0600, and a log swapped for a FIFO meanwhile does not freeze the error report', async () => {
    const { theirs, root } = territory();
    // Ours, in a directory of the other user's (say, their repository).
    const log = path.join(theirs, 'daemon.log');
    const first = await ensureInChild(path.join(root, 'd.ipc'), log);
    expect(first).toEqual({ code: 'ERR_IPC_DAEMON_EXITED', logTail: 'daemon output' });
    expect(fs.statSync(log).mode & 0o777).toBe(0o600);
    // The daemon (the other user's doing) puts a FIFO in the log's place
    // before failing; the caller reads the log's tail for its error.
    const swapper = `require('node:child_process').execFileSync('setpriv', ['--reuid=${OTHER_UID}', '--regid=${OTHER_UID}', '--clear-groups', 'sh', '-c', 'rm -f "$0" && mkfifo "$0"', ${JSON.stringify(log)}]); process.exit(3)`;
    const second = await ensureInChild(path.join(root, 'd.ipc'), log, swapper);
    expect(second).toEqual({ code: 'ERR_IPC_DAEMON_EXITED', logTail: null });
    expect(fs.lstatSync(log).isFIFO()).toBe(true);
  });
});
