// Client identity and size limits against another local user
// (docs/security.md#threat-model): `serverUid` refuses a server run by
// someone else before a byte of the request leaves, and
// `maxResponseBytes` bounds what a server can make a client hold. The
// impostor is a real second user (uid 65534 through setpriv) listening
// first on a path in a shared directory; skipped, visibly, where this
// process cannot switch users.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { connect, sendCommand, sendCommandSync, streamCommand } from '../../dist/index.js';
import { fixtures, repoRoot, socketPath, spawnNode, waitFor, waitForLine } from '../helpers';
import { serve } from '../servers';
import { cannotSwitchUser, OTHER_UID, ready, runAsOther, territory } from '../security/other-user';

// The other user's server: prints `ready`, then one line per request it
// receives (what an impostor would read), and answers "forged".
const IMPOSTOR = `
  const { createServer } = require(process.argv[1]);
  createServer(process.argv[2], (request) => {
    console.log('got ' + request.toString());
    return 'forged';
  }).then(() => console.log('ready'), (e) => { console.error(e); process.exit(1); });
`;

async function impostor(): Promise<{ socket: string; output: () => string }> {
  const { shared } = territory();
  const socket = path.join(shared, 'daemon.ipc');
  const child = runAsOther(IMPOSTOR, [path.join(repoRoot, 'dist', 'index.js'), socket]);
  await ready(child);
  return { socket, output: child.output };
}

describe.skipIf(cannotSwitchUser !== null)('serverUid against a server of another user (uid 65534)', () => {
  it('without it the impostor reads the request and its forged reply is taken', async () => {
    const { socket, output } = await impostor();
    expect((await sendCommand(socket, 'password=hunter2')).toString()).toBe('forged');
    await waitFor(() => output().includes('got password=hunter2'), 10000, 'the impostor reading the request');
  });

  it("'self' refuses it with ERR_IPC_SERVER_IDENTITY before the request is sent, in every client", async () => {
    const { socket, output } = await impostor();
    const expected = { code: 'ERR_IPC_SERVER_IDENTITY', address: socket };
    const error = await sendCommand(socket, 'password=hunter2', { serverUid: 'self' }).catch((e: unknown) => e);
    expect(error).toMatchObject(expected);
    expect(String((error as Error).message)).toContain(socket);
    expect(String((error as Error).message)).toContain(`expected uid ${process.getuid!()}`);
    expect(String((error as Error).message)).toContain(`runs as uid ${OTHER_UID}`);
    expect(() => sendCommandSync(socket, 'password=hunter2', { serverUid: 'self' })).toThrow(
      expect.objectContaining(expected) as Error,
    );
    await expect(connect(socket, { serverUid: 'self' })).rejects.toMatchObject(expected);
    const stream = streamCommand(socket, 'password=hunter2', { serverUid: 0 });
    await expect((async () => { for await (const chunk of stream) void chunk; })()).rejects.toMatchObject(expected);
    // The impostor got connections, never a byte of a request: the
    // marker sent after them is the first request it reads.
    expect(await sendCommand(socket, 'marker')).toEqual(Buffer.from('forged'));
    await waitFor(() => output().includes('got marker'), 10000, 'the impostor reading the marker');
    expect(output()).not.toContain('password');
  });

  it('a uid names whom the server must run as', async () => {
    const { socket } = await impostor();
    expect((await sendCommand(socket, 'x', { serverUid: OTHER_UID })).toString()).toBe('forged');
  });
});

describe.skipIf(process.platform === 'win32')('serverUid and maxResponseBytes with our own server', () => {
  it("'self' and our own uid are served, by the synchronous client too", async () => {
    const p = socketPath();
    // In another process: the synchronous client blocks this one.
    const child = spawnNode(path.join(fixtures, 'app-server.js'), [p]);
    await waitForLine(child, /listening/);
    expect((await sendCommand(p, 'ping', { serverUid: 'self' })).toString()).toBe('pong');
    expect(sendCommandSync(p, 'ping', { serverUid: 'self' }).toString()).toBe('pong');
    expect(sendCommandSync(p, 'ping', { serverUid: process.getuid!() }).toString()).toBe('pong');
    // app-server's `big`: 10000 rows of 81 bytes.
    expect(sendCommandSync(p, 'big', { maxResponseBytes: 810000 }).length).toBe(810000);
    expect(() => sendCommandSync(p, 'big', { maxResponseBytes: 809999 })).toThrow(
      expect.objectContaining({ code: 'ERR_IPC_RESPONSE_TOO_LARGE', address: p }) as Error,
    );
  });

  it('maxResponseBytes takes a response of exactly the limit and refuses one byte more', async () => {
    const p = socketPath();
    await serve(p, () => 'x'.repeat(1000));
    expect((await sendCommand(p, 'q', { maxResponseBytes: 1000 })).length).toBe(1000);
    const expected = { code: 'ERR_IPC_RESPONSE_TOO_LARGE', address: p };
    await expect(sendCommand(p, 'q', { maxResponseBytes: 999 })).rejects.toMatchObject(expected);
    const stream = streamCommand(p, 'q', { maxResponseBytes: 999 });
    await expect((async () => { for await (const chunk of stream) void chunk; })()).rejects.toMatchObject(expected);
  });

  it('a big response over the limit ends the exchange early instead of being read whole', async () => {
    const p = socketPath();
    const big = Buffer.alloc(64 * 1024 * 1024, 'b');
    await serve(p, () => big);
    await expect(sendCommand(p, 'q', { maxResponseBytes: 1024 * 1024 })).rejects.toMatchObject({
      code: 'ERR_IPC_RESPONSE_TOO_LARGE',
    });
  });

  it('checks both options', () => {
    expect(() => sendCommand('/x', 'x', { serverUid: 'root' as 'self' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }) as Error);
    expect(() => sendCommand('/x', 'x', { serverUid: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }) as Error);
    expect(() => sendCommand('/x', 'x', { maxResponseBytes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }) as Error);
    expect(() => sendCommand('/x', 'x', { maxResponseBytes: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }) as Error);
  });
});
