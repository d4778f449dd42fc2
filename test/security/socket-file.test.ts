// The socket file against another local user (docs/security.md#the-socket-file):
// its mode is in place before anyone can reach it, and no path that user
// can swap is followed after bind(), for a new socket and for `replace`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { createServer, sendCommand } from '../../dist/index.js';
import { onCleanup } from '../helpers';
import { cannotSwitchUser, doAsOther, lastJson, OTHER_UID, ready, runAsOther, slowMaze, territory } from './other-user';

// The other user's side: watches `<real>/<name>` as fast as it can. With
// `swap`, whenever a socket of root's is there, puts a symlink to `target`
// in its place (rename). With `watch`, records every mode a socket there
// was seen with. Prints its tally as JSON when told to stop (SIGTERM).
const WATCHER = `
  const fs = require('node:fs'), path = require('node:path');
  const [real, name, action, target] = process.argv.slice(1);
  const at = path.join(real, name);
  const tally = { swaps: 0, modes: {} };
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  console.log('ready');
  let n = 0;
  function spin() {
    for (let i = 0; i < 20000 && !stop; i++) {
      let st;
      try { st = fs.lstatSync(at); } catch { continue; }
      if (!st.isSocket() || st.uid !== 0) continue;
      const mode = (st.mode & 0o7777).toString(8);
      tally.modes[mode] = (tally.modes[mode] || 0) + 1;
      if (action === 'swap') {
        const tmp = path.join(real, 'x' + n++);
        try { fs.symlinkSync(target, tmp); fs.renameSync(tmp, at); tally.swaps++; } catch {}
      }
    }
    if (stop) { console.log(JSON.stringify(tally)); process.exit(0); }
    setImmediate(spin);
  }
  spin();
`;

async function stopWatcher(child: ReturnType<typeof runAsOther>): Promise<{ swaps: number; modes: Record<string, number> }> {
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
  return lastJson(child.output());
}

/** Starts and closes a server at `socket` `times` times (a start that fails is fine: the attacker may have won). */
async function restart(socket: string, times: number, options: Parameters<typeof createServer>[2], until?: () => boolean): Promise<number> {
  let started = 0;
  for (let i = 0; i < times && !(until?.() ?? false); i++) {
    try {
      const server = await createServer(socket, () => 'pong', { ...options, threads: 1 });
      started++;
      await server.close({ force: true });
    } catch {
      // ERR_IPC_NOT_A_SOCKET after a swap: the symlink is left to its owner.
    }
    // Clear what the attacker left, as the directory's owner would.
    doAsOther(`try { require('node:fs').unlinkSync(process.argv[1]) } catch {}`, [socket]);
  }
  return started;
}

describe.skipIf(cannotSwitchUser !== null)('socket file against another user', () => {
  test('socketMode is never applied through a path the other user swapped (finding 1)', async () => {
    const { root, theirs } = territory();
    const secret = path.join(root, 'secret');
    fs.writeFileSync(secret, 'root only\n', { mode: 0o600 });
    const maze = slowMaze(theirs);
    const watcher = runAsOther(WATCHER, [maze.real, 'app.ipc', 'swap', secret]);
    await ready(watcher);
    const secretMode = () => fs.statSync(secret).mode & 0o7777;
    const started = await restart(path.join(maze.slow, 'app.ipc'), 20, { socketMode: 0o666 }, () => secretMode() !== 0o600);
    const tally = await stopWatcher(watcher);
    console.log(`socketMode swap: ${started} starts, ${tally.swaps} swaps by uid ${OTHER_UID}, secret mode ${secretMode().toString(8)}`);
    expect(tally.swaps).toBeGreaterThan(0); // the attacker did act
    expect(secretMode()).toBe(0o600);
  });

  test('with umask 000 no socket with a wider mode than socketMode is ever at the path (finding 2)', async () => {
    const { theirs } = territory();
    const maze = slowMaze(theirs);
    const watcher = runAsOther(WATCHER, [maze.real, 'app.ipc', 'watch']);
    await ready(watcher);
    const old = process.umask(0);
    onCleanup(() => process.umask(old));
    const socket = path.join(maze.slow, 'app.ipc');
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const server = await createServer(socket, () => 'pong', { socketMode: 0o600, threads: 1 });
      served += (await sendCommand(socket, 'ping')).toString() === 'pong' ? 1 : 0;
      await server.close({ force: true });
    }
    const tally = await stopWatcher(watcher);
    console.log(`umask 000: modes seen by uid ${OTHER_UID}: ${JSON.stringify(tally.modes)}`);
    expect(served).toBe(20);
    expect(Object.keys(tally.modes).length).toBeGreaterThan(0); // it did see our sockets
    expect(Object.keys(tally.modes)).toEqual(['600']);
  });

  test("replace leaves another user's file at <path>.new alone (finding 7)", async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'app.ipc');
    doAsOther(`require('node:fs').writeFileSync(process.argv[1], 'their data\\n')`, [`${socket}.new`]);
    const first = await createServer(socket, () => 'one', { threads: 1 });
    onCleanup(() => first.close({ force: true }));
    const second = await createServer(socket, () => 'two', { threads: 1, replace: true, socketMode: 0o600 });
    onCleanup(() => second.close({ force: true }));
    expect((await sendCommand(socket, 'x')).toString()).toBe('two');
    expect(fs.readFileSync(`${socket}.new`, 'utf8')).toBe('their data\n');
    expect(fs.statSync(`${socket}.new`).uid).toBe(OTHER_UID);
    expect((fs.statSync(socket).mode & 0o7777).toString(8)).toBe('600');
    // Nothing of ours is left beside the path.
    expect(fs.readdirSync(shared).sort()).toEqual(['app.ipc', 'app.ipc.new']);
  });
});
