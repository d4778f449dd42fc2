// Another local user crowding a server out (docs/security.md#refused-and-undecided-peers,
// docs/security.md#memory): a user allowPeer refuses cannot take the
// connection slots from the users it serves, and incomplete requests
// together cannot hold more than maxBufferedRequestBytes.
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { createServer, sendCommand, type IpcServer } from '../../dist/index.js';
import { onCleanup, waitFor } from '../helpers';
import { cannotSwitchUser, lastJson, OTHER_UID, ready, runAsOther, territory } from './other-user';

// The other user's side: keeps `count` connections open to the socket,
// silent, opening a new one whenever the server closes one, until told to
// stop (SIGTERM); prints {opened, closedByServer, open} as JSON.
const CROWD = `
  const net = require('node:net');
  const [socket, count] = [process.argv[1], Number(process.argv[2])];
  const tally = { opened: 0, closedByServer: 0 };
  let stopping = false;
  function one() {
    if (stopping) return;
    const s = net.createConnection(socket);
    let connected = false;
    s.on('connect', () => { connected = true; tally.opened++; if (tally.opened === count) console.log('ready'); });
    s.on('error', () => {});
    s.on('close', () => {
      if (connected && !stopping) tally.closedByServer++;
      if (!stopping) setTimeout(one, 1);
    });
    s.resume();
  }
  for (let i = 0; i < count; i++) one();
  process.on('SIGTERM', () => { stopping = true; console.log(JSON.stringify(tally)); process.exit(0); });
`;

// The other user's side: `count` connections, each sending `bytes` of
// data packets and never the flush; holds them until killed.
const UPLOADS = `
  const net = require('node:net');
  const [socket, count, bytes] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
  const packet = Buffer.concat([Buffer.from('fff0'), Buffer.alloc(65516, 120)]);
  const body = Buffer.concat(Array(Math.ceil(bytes / 65516)).fill(packet));
  let connected = 0;
  for (let i = 0; i < count; i++) {
    const s = net.createConnection(socket, () => { s.write(body); if (++connected === count) console.log('ready'); });
    s.on('error', () => {});
  }
`;

async function stopCrowd(child: ReturnType<typeof runAsOther>): Promise<{ opened: number; closedByServer: number }> {
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
  return lastJson(child.output());
}

function countErrors(server: IpcServer): Map<string, number> {
  const counts = new Map<string, number>();
  server.on('clientError', (e) => counts.set(e.code, (counts.get(e.code) ?? 0) + 1));
  return counts;
}

describe.skipIf(cannotSwitchUser !== null)('crowding by another user', () => {
  test('root is served while a refused user keeps 1100 connections open (finding 6)', async () => {
    const { root } = territory();
    const socket = path.join(root, 'app.ipc');
    const server = await createServer(socket, () => 'pong', { socketMode: 0o666, allowPeer: (peer) => peer.uid !== OTHER_UID });
    onCleanup(() => server.close({ force: true }));
    const errors = countErrors(server);
    const crowd = runAsOther(CROWD, [socket, '1100']);
    await ready(crowd);
    // Root's requests, one after another, while the crowd presses on.
    let served = 0;
    const failures: string[] = [];
    for (let i = 0; i < 100; i++) {
      try {
        if ((await sendCommand(socket, 'ping', { timeoutMs: 20000 })).toString() === 'pong') served++;
      } catch (e) {
        failures.push((e as { code?: string }).code ?? String(e));
      }
    }
    const held = server.stats().connections.open;
    const tally = await stopCrowd(crowd);
    console.log(`uid ${OTHER_UID}: ${tally.opened} connections opened, ${tally.closedByServer} closed by the server; open at the end: ${held}; clientErrors ${JSON.stringify([...errors])}; root served ${served}/100 ${[...new Set(failures)].join(' ')}`);
    expect(tally.opened).toBeGreaterThanOrEqual(1100);
    expect(served).toBe(100);
    // Its share: a quarter of maxConnections (1024), plus root's own.
    expect(held).toBeLessThanOrEqual(256 + 2);
  });

  test('8 incomplete large requests stay within maxBufferedRequestBytes (finding 9)', async () => {
    const { root } = territory();
    const socket = path.join(root, 'app.ipc');
    const budget = 16 * 1024 * 1024;
    const before = process.memoryUsage().rss;
    const server = await createServer(socket, () => 'pong', { socketMode: 0o666, maxBufferedRequestBytes: budget });
    onCleanup(() => server.close({ force: true }));
    const errors = countErrors(server);
    const each = 32 * 1024 * 1024;
    const uploads = runAsOther(UPLOADS, [socket, '8', String(each)]);
    await ready(uploads);
    // At most budget / each of them can be held whole: every other is dropped.
    await waitFor(() => (errors.get('ERR_IPC_BUFFER_FULL') ?? 0) >= 8, 60000, '8 uploads dropped');
    const grown = process.memoryUsage().rss - before;
    console.log(`8 x ${each >> 20} MiB incomplete requests, budget ${budget >> 20} MiB: clientErrors ${JSON.stringify([...errors])}, rss grew ${(grown / 2 ** 20).toFixed(0)} MiB`);
    expect(errors.get('ERR_IPC_BUFFER_FULL')).toBe(8);
    expect(grown).toBeLessThan(budget + 64 * 1024 * 1024);
    expect((await sendCommand(socket, 'ping')).toString()).toBe('pong');
  });
});
