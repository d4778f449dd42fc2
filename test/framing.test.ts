// pkt-line framing (docs/protocol.md#pkt-line-framing) on the wire, in both directions: what our
// client and server write, byte for byte, and every reader rule, checked
// against raw node:net peers that send crafted bytes; then malformed
// requests of every kind docs/protocol.md#pkt-line-reader-rules names, sent
// raw to a server in this process and to one in its own: no response, a
// clientError with a code, never the handler, and the server goes on serving.
import { describe, expect, it, test } from 'vitest';

import { createServer, getActiveState, sendCommand, streamCommand } from '../dist/index.js';
import { testAppHandler } from '../dist/test-app.js';
import { socketPath, waitFor } from './helpers';
import { encode, rawConnect, rawExchange, rawExchangeResult, rawServer } from './raw-peers';
import { startServerChild } from './server-child';
import { serve } from './servers';

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
});

/** A server running the test application, and what it did with the requests. */
interface FramingServer {
  /** clientError events so far: of `code`, or of any code. */
  clientErrors(code?: string): number;
  /** Requests that reached the handler so far. */
  handled(): Promise<number>;
  /** Resolves once the server has closed every connection but the one asking. */
  allClosed(): Promise<void>;
}

// The reader rules are the serving threads', the same whether the server
// shares the test's process or runs in its own.
const servers: Array<[string, (path: string) => Promise<FramingServer>]> = [
  [
    'in this process',
    async (path) => {
      let handled = 0;
      const codes: string[] = [];
      // One serving thread: a probe or a bad request that held it would stall the rest.
      const server = await serve(
        path,
        (request, reply, ctx) => {
          handled++;
          return testAppHandler(request, reply, ctx);
        },
        { threads: 1 },
      );
      server.on('clientError', (e) => codes.push(e.code));
      return {
        clientErrors: (code) => codes.filter((c) => code === undefined || c === code).length,
        handled: async () => handled,
        allClosed: () => waitFor(() => server.stats().connections.open === 0, 10000, 'every connection closed'),
      };
    },
  ],
  [
    'in a child process',
    async (path) => {
      // One serving thread, as above (and see the probe test).
      const server = await startServerChild(path, { threads: 1 });
      const stats = async () =>
        JSON.parse((await sendCommand(path, 'serverstats')).toString()) as { requests: number; handlerErrors: number; connections: { open: number } };
      return {
        clientErrors: (code) => (code === undefined ? server.count('clientError') : server.count('clientError', 'code', code)),
        // Responses completed and handlers failed, before this request's own.
        handled: async () => {
          const s = await stats();
          return s.requests + s.handlerErrors;
        },
        // The stats request is the one open connection left.
        allClosed: () => waitFor(async () => (await stats()).connections.open === 1, 10000, 'every connection closed'),
      };
    },
  ],
];

// [name, bytes, the clientError code, whether the client half-closes after sending]
const malformed: Array<[string, Buffer | string, string, boolean]> = [
  ['0003 (reserved length)', '00030000', 'ERR_IPC_PROTOCOL', false],
  ['0003 after a data packet', '0008ping0003', 'ERR_IPC_PROTOCOL', true],
  ['non-hex in position 1', 'g008ping0000', 'ERR_IPC_PROTOCOL', false],
  ['non-hex in position 2', '0x08ping0000', 'ERR_IPC_PROTOCOL', false],
  ['non-hex in position 3', '00-8ping0000', 'ERR_IPC_PROTOCOL', false],
  ['non-hex in position 4', '000Gping0000', 'ERR_IPC_PROTOCOL', false],
  ['a non-hex header alone', 'zzzz', 'ERR_IPC_PROTOCOL', true],
  ['space in the header', ' 008ping0000', 'ERR_IPC_PROTOCOL', false],
  ['NUL in the header', Buffer.from('00\u00008ping0000', 'latin1'), 'ERR_IPC_PROTOCOL', false],
  ['high byte in the header', Buffer.from([0x30, 0x30, 0xb0, 0x38, 0x70, 0x69, 0x6e, 0x67]), 'ERR_IPC_PROTOCOL', false],
  ['length 65521', Buffer.concat([Buffer.from('fff1'), Buffer.alloc(65517, 0x61), Buffer.from('0000')]), 'ERR_IPC_PROTOCOL', false],
  ['length 65521, the header alone', 'fff1', 'ERR_IPC_PROTOCOL', true],
  ['length ffff', 'ffff', 'ERR_IPC_PROTOCOL', false],
  ['bad header after a good packet', '0008pingzzzz0000', 'ERR_IPC_PROTOCOL', false],
  ...['0', '000', '0008', '0008pi', '0008ping', '0008ping00'].map(
    (input): [string, string, string, boolean] => [`truncated: ${input}`, input, 'ERR_IPC_INCOMPLETE_REQUEST', true],
  ),
];

describe.each(servers)('what a server %s accepts', (_where, start) => {
  test('0000, 0001, 0002 and 0004 end a request without error; upper-case hex is read', async () => {
    const path = socketPath();
    const server = await start(path);
    for (const end of ['0000', '0001', '0002', '0004']) {
      expect((await rawExchange(path, `0008ping${end}`)).toString(), end).toBe('0008pong0000');
    }
    for (const payload of ['PING!!', 'abcdef']) {
      const wire = await rawExchange(path, `000A${payload}0000`);
      expect(wire.toString()).toBe(encode(`unhandled command: ${payload}`).toString());
    }
    expect(await server.handled()).toBe(6);
    expect(server.clientErrors()).toBe(0);
  });

  test('each malformed request is dropped without a response, reported with its code and never handled; the server serves on', async () => {
    const path = socketPath();
    const server = await start(path);
    for (const [name, input, code, halfClose] of malformed) {
      const before = server.clientErrors(code);
      const all = server.clientErrors();
      const result = await rawExchangeResult(path, input, { end: halfClose });
      expect(result.data.length, name).toBe(0);
      await expect.poll(() => server.clientErrors(code), { timeout: 10000, message: name }).toBe(before + 1);
      expect(server.clientErrors(), name).toBe(all + 1);
    }
    // One each, none late.
    expect(server.clientErrors()).toBe(malformed.length);
    expect(await server.handled()).toBe(0);
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
  });

  test('many bad clients at once do not disturb good ones', async () => {
    const path = socketPath();
    const server = await start(path);
    // Each good client gets its own answer back ("unhandled command: okN").
    const good = Promise.all(Array.from({ length: 100 }, (_, i) => sendCommand(path, `ok${i}`)));
    good.catch(() => {}); // awaited below; if a raw peer fails first, no unhandled rejection
    const protocolErrors = malformed.filter(([, , code, halfClose]) => code === 'ERR_IPC_PROTOCOL' && !halfClose);
    const bad = [
      ...Array.from({ length: 100 }, (_, i) => rawExchange(path, protocolErrors[i % protocolErrors.length]![1])),
      rawExchange(path, 'garbage!', { end: true }),
      rawExchange(path, '0100' + 'x'.repeat(50), { end: true }),
      (async () => {
        const s = await rawConnect(path);
        // Gone once its bytes are out: destroy() would drop them if still queued.
        await new Promise((resolve) => s.write('0020abc', resolve));
        s.destroy();
        return Buffer.alloc(0);
      })(),
    ];
    expect((await Promise.all(bad)).map((data) => data.length)).toEqual(Array(bad.length).fill(0));
    expect((await good).map((b) => b.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `unhandled command: ok${i}`));
    await expect.poll(() => server.clientErrors('ERR_IPC_PROTOCOL'), { timeout: 10000 }).toBe(101);
    await expect.poll(() => server.clientErrors('ERR_IPC_INCOMPLETE_REQUEST'), { timeout: 10000 }).toBe(2);
    expect(server.clientErrors()).toBe(103);
  });

  test('connections that send nothing and hang up are silent liveness probes', async () => {
    const path = socketPath();
    const server = await start(path);
    for (let i = 0; i < 10; i++) {
      const r = await rawExchangeResult(path, Buffer.alloc(0), { end: true });
      expect(r.data.length).toBe(0);
    }
    // Git's probe, as getActiveState() makes it.
    for (let i = 0; i < 20; i++) expect(await getActiveState(path)).toBe('listening');
    expect((await sendCommand(path, 'ping')).toString()).toBe('pong');
    expect(await server.handled()).toBe(1);
    // No clientError for the probes: once the server has closed them all,
    // a malformed request's clientError comes after any a probe caused
    // (one serving thread, one queue of events to JS).
    await server.allClosed();
    expect(server.clientErrors()).toBe(0);
    expect((await rawExchange(path, '00030000')).length).toBe(0);
    await waitFor(() => server.clientErrors('ERR_IPC_PROTOCOL') >= 1, 10000, "the malformed request's clientError");
    expect(server.clientErrors()).toBe(1);
  });
});
