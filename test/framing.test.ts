// pkt-line framing (docs/protocol.md#pkt-line-framing) on the wire, in both directions: what our
// client and server write, byte for byte, and every reader rule, checked
// against raw node:net peers that send crafted bytes; then malformed
// requests of every kind docs/protocol.md#pkt-line-reader-rules names, sent
// raw to a server in its own process: no response, a clientError with a
// code, and the server goes on serving.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, test } from 'vitest';

import { createServer, sendCommand, streamCommand, type IpcError } from '../dist/index.js';
import { socketPath, waitFor } from './helpers';
import { encode, rawExchange, rawExchangeResult, rawServer } from './raw-peers';
import { startServerChild, type ServerChild } from './server-child';

const MAX = 65516;

function filled(size: number, seed = 7): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('what the client writes', () => {
  it.each([0, 1, 5, MAX, MAX + 1, 3 * MAX + 17])('a %d-byte request is cut into lowercase packets of at most 65516 bytes and a flush', async (size) => {
    const path = socketPath();
    const peer = await rawServer(path, () => encode('ok'));
    const request = filled(size);
    const response = await sendCommand(path, request);
    expect(response.toString()).toBe('ok');
    expect(peer.requests).toHaveLength(1);
    expect(peer.requests[0]!.equals(encode(request))).toBe(true);
    // Lowercase hex, and never an empty data packet.
    const wire = peer.requests[0]!.toString('latin1');
    if (size > MAX) expect(wire.startsWith('fff0')).toBe(true);
    expect(wire.includes('0004')).toBe(false);
  });

  it('an empty request is just the flush', async () => {
    const path = socketPath();
    const peer = await rawServer(path, () => encode(''));
    expect((await sendCommand(path, '')).length).toBe(0);
    expect(peer.requests[0]!.toString()).toBe('0000');
  });
});

describe('what the client accepts', () => {
  const cases: Array<[string, string | string[], string]> = [
    ['a flush', '0008pong0000', 'pong'],
    ['a delim packet (0001) as the end', '0008pong0001', 'pong'],
    ['a response-end packet (0002) as the end', '0008pong0002', 'pong'],
    ['an empty data packet (0004) as the end', '0008pong0004', 'pong'],
    ['upper-case hex', '000Apong!!0000', 'pong!!'],
    ['packets split across writes', ['00', '0', '8po', 'ng000', '0'], 'pong'],
    ['several packets', '0007abc0007def0000', 'abcdef'],
    ['a bare flush (empty response)', '0000', ''],
  ];
  it.each(cases)('%s', async (_name, wire, expected) => {
    const path = socketPath();
    await rawServer(path, () => wire);
    expect((await sendCommand(path, 'x')).toString()).toBe(expected);
  });

  it('a full-size packet of 65520 bytes', async () => {
    const path = socketPath();
    const payload = filled(MAX);
    await rawServer(path, () => Buffer.concat([Buffer.from('fff0'), payload, Buffer.from('0000')]));
    expect((await sendCommand(path, 'x')).equals(payload)).toBe(true);
  });

  const errors: Array<[string, string, string]> = [
    ['0003', '0008pong0003', 'ERR_IPC_PROTOCOL'],
    ['a non-hex header', '00g8pong0000', 'ERR_IPC_PROTOCOL'],
    ['a header with a space', ' 008pong0000', 'ERR_IPC_PROTOCOL'],
    ['a length above 65520', 'fff1' + 'x'.repeat(65517) + '0000', 'ERR_IPC_PROTOCOL'],
    ['a stream that ends inside a payload', '0008po', 'ERR_IPC_INCOMPLETE_RESPONSE'],
    ['a stream that ends inside a header', '0008pong00', 'ERR_IPC_INCOMPLETE_RESPONSE'],
    ['a stream that ends before the flush', '0008pong', 'ERR_IPC_INCOMPLETE_RESPONSE'],
    ['a server that closes at once', '', 'ERR_IPC_INCOMPLETE_RESPONSE'],
  ];
  it.each(errors)('rejects %s', async (_name, wire, code) => {
    const path = socketPath();
    await rawServer(path, () => wire);
    await expect(sendCommand(path, 'x')).rejects.toMatchObject({ code });
    // The streaming reader applies the same rules.
    const stream = async () => {
      for await (const chunk of streamCommand(path, 'x')) void chunk;
    };
    await expect(stream()).rejects.toMatchObject({ code });
  });
});

describe('what the server writes and accepts', () => {
  it('answers in lowercase packets of at most 65516 bytes, then a flush', async () => {
    const path = socketPath();
    const big = filled(2 * MAX + 3, 11);
    const server = await createServer(path, (request) => (request.toString() === 'big' ? big : 'pong'));
    expect((await rawExchange(path, encode('ping'))).toString()).toBe('0008pong0000');
    const wire = await rawExchange(path, encode('big'));
    expect(wire.equals(encode(big))).toBe(true);
    await server.close();
  });

  it('an empty response is just the flush; empty writes send nothing', async () => {
    const path = socketPath();
    const server = await createServer(path, async (_request, reply) => {
      await reply.write('');
      await reply.write(Buffer.alloc(0));
    });
    expect((await rawExchange(path, encode('x'))).toString()).toBe('0000');
    await server.close();
  });

  it('streamed chunks become data packets in order', async () => {
    const path = socketPath();
    const server = await createServer(path, async (_request, reply) => {
      await reply.write('ab');
      await reply.write('cde');
      return 'f';
    });
    expect((await rawExchange(path, encode('x'))).toString()).toBe('0006ab0007cde0005f0000');
    await server.close();
  });

  const ends: Array<[string, string]> = [
    ['0000', '0008ping0000'],
    ['0001', '0008ping0001'],
    ['0002', '0008ping0002'],
    ['0004', '0008ping0004'],
    ['upper-case hex', '000APING!!0000'],
  ];
  it.each(ends)('a request ended by %s is complete', async (_name, wire) => {
    const path = socketPath();
    const seen: string[] = [];
    const server = await createServer(path, (request) => {
      seen.push(request.toString());
      return 'ok';
    });
    expect((await rawExchange(path, wire)).toString()).toBe('0006ok0000');
    expect(seen[0]!.toLowerCase().startsWith('ping')).toBe(true);
    await server.close();
  });

  const bad: Array<[string, string, string]> = [
    ['0003', '0008ping0003', 'ERR_IPC_PROTOCOL'],
    ['a non-hex header', 'zzzz', 'ERR_IPC_PROTOCOL'],
    ['a length above 65520', 'fff1', 'ERR_IPC_PROTOCOL'],
    ['a client that hangs up mid-request', '0008pi', 'ERR_IPC_INCOMPLETE_REQUEST'],
  ];
  it.each(bad)('rejects %s without a response and keeps serving', async (_name, wire, code) => {
    const path = socketPath();
    let handled = 0;
    const server = await createServer(path, () => {
      handled++;
      return 'pong';
    });
    const errors: IpcError[] = [];
    server.on('clientError', (e) => errors.push(e));
    expect((await rawExchange(path, wire, { end: true })).length).toBe(0);
    await waitFor(() => errors.length === 1, 5000, 'clientError');
    expect(errors[0]!.code).toBe(code);
    expect(handled).toBe(0);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    await server.close();
  });
});

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
  const result = await rawExchangeResult(path, input, { end: half });
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
      const r = await rawExchangeResult(path, Buffer.alloc(0), { end: true });
      expect(r.data.length).toBe(0);
    }
    await sleep(200);
    expect(server.count('clientError')).toBe(0);
  });

  test('delim, response-end and the empty packet end a request without error; upper-case hex is read', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    for (const end of ['0000', '0001', '0002', '0004']) {
      const r = await rawExchangeResult(path, Buffer.from(`0008ping${end}`));
      expect(r.data.toString()).toBe(encode('pong').toString());
    }
    const upper = await rawExchangeResult(path, Buffer.from('000Aabcdef0000'));
    expect(upper.data.toString()).toBe(encode('unhandled command: abcdef').toString());
    expect(server.count('clientError')).toBe(0);
  });

  test('many bad clients at once do not disturb good ones', async () => {
    const path = socketPath();
    const server = await startServerChild(path);
    const results = await Promise.all([
      ...Array.from({ length: 100 }, (_, i) => rawExchangeResult(path, bad[i % bad.length]![1]).then((r) => r.data.length)),
      ...Array.from({ length: 100 }, () => sendCommand(path, 'ping').then((b) => (b.toString() === 'pong' ? 0 : 1))),
    ]);
    expect(results.every((n) => n === 0)).toBe(true);
    await expect.poll(() => server.count('clientError', 'code', 'ERR_IPC_PROTOCOL'), { timeout: 10000 }).toBe(100);
  });
});
