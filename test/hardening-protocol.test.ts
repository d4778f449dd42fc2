// Requests with malformed headers of every kind docs/protocol.md#pkt-line-framing names, sent raw to
// a server in its own process: no response, a clientError with a code, and
// the server goes on serving.
import { describe, expect, test } from 'vitest';

import { sendCommand } from '../dist/index.js';
import { socketPath } from './helpers';
import { frame, rawExchange, sleep, startServerChild, type ServerChild } from './hardening-helpers';

const bad: Array<[string, Buffer]> = [
  ['0003 (reserved length)', Buffer.from('00030000')],
  ['non-hex in position 1', Buffer.from('g008ping0000')],
  ['non-hex in position 2', Buffer.from('0x08ping0000')],
  ['non-hex in position 3', Buffer.from('00-8ping0000')],
  ['non-hex in position 4', Buffer.from('000Gping0000')],
  ['space in the header', Buffer.from(' 008ping0000')],
  ['NUL in the header', Buffer.from('00\u00008ping0000', 'latin1')],
  ['high byte in the header', Buffer.from([0x30, 0x30, 0xb0, 0x38, 0x70, 0x69, 0x6e, 0x67])],
  ['length 65521', Buffer.concat([Buffer.from('fff1'), Buffer.alloc(65517, 0x61), Buffer.from('0000')])],
  ['length ffff', Buffer.from('ffff')],
  ['bad header after a good packet', Buffer.concat([Buffer.from('0008ping'), Buffer.from('zzzz0000')])],
];

async function expectDropped(server: ServerChild, path: string, input: Buffer, code: string, half = false): Promise<void> {
  const before = server.count('clientError', 'code', code);
  const result = await rawExchange(path, input, { end: half });
  expect(result.data.length).toBe(0);
  await expect.poll(() => server.count('clientError', 'code', code), { timeout: 10000 }).toBe(before + 1);
}

describe('malformed requests', () => {
  test.each(bad)('%s: dropped without a response, ERR_IPC_PROTOCOL', async (_name, input) => {
    const path = socketPath();
    const server = await startServerChild(path);
    await expectDropped(server, path, input, 'ERR_IPC_PROTOCOL');
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
  });

  test('truncated requests: ERR_IPC_INCOMPLETE_REQUEST, never handled', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    for (const input of ['0', '000', '0008', '0008pi', '0008ping', '0008ping00']) {
      await expectDropped(server, path, Buffer.from(input), 'ERR_IPC_INCOMPLETE_REQUEST', true);
    }
  });

  test('a connection that sends nothing and hangs up is a silent liveness probe', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    for (let i = 0; i < 10; i++) {
      const r = await rawExchange(path, Buffer.alloc(0), { end: true });
      expect(r.data.length).toBe(0);
    }
    await sleep(200);
    expect(server.count('clientError')).toBe(0);
  });

  test('delim, response-end and the empty packet end a request without error; upper-case hex is read', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    for (const end of ['0000', '0001', '0002', '0004']) {
      const r = await rawExchange(path, Buffer.from(`0008ping${end}`));
      expect(r.data.toString()).toBe(frame('pong').toString());
    }
    const upper = await rawExchange(path, Buffer.from('000Aabcdef0000'));
    expect(upper.data.toString()).toBe(frame('unhandled command: abcdef').toString());
    expect(server.count('clientError')).toBe(0);
  });

  test('many bad clients at once do not disturb good ones', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    const results = await Promise.all([
      ...Array.from({ length: 100 }, (_, i) => rawExchange(path, bad[i % bad.length]![1]).then((r) => r.data.length)),
      ...Array.from({ length: 100 }, () => sendCommand(path, 'ping').then((b) => (b.toString() === 'pong' ? 0 : 1))),
    ]);
    expect(results.every((n) => n === 0)).toBe(true);
    await expect.poll(() => server.count('clientError', 'code', 'ERR_IPC_PROTOCOL'), { timeout: 10000 }).toBe(100);
  });
});
