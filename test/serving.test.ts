// Serving (docs/protocol.md#the-server): requests and responses of every
// size, the test application, streamed replies, many clients at once, and
// large chunks the server sends from their own memory.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { sendCommand, streamCommand } from '../dist/index.js';
import { bigRow } from '../dist/test-app.js';
import { socketPath, waitFor } from './helpers';
import { serve } from './servers';

function filled(size: number, byte = 0x41): Buffer {
  return Buffer.alloc(size, byte);
}

describe('requests and responses', () => {
  it.each([0, 1, 65516, 65517, 10 * 1024 * 1024])('echoes a %d-byte request intact', async (size) => {
    const p = socketPath();
    await serve(p, (request) => request);
    const request = Buffer.alloc(size);
    for (let i = 0; i < size; i++) request[i] = (i * 7 + 3) & 0xff;
    const response = await sendCommand(p, request);
    expect(response.length).toBe(size);
    expect(response.equals(request)).toBe(true);
  });

  it('runs the test application: ping, big, chunk, sendbytes, unknown', async () => {
    const p = socketPath();
    await serve(p);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
    const rows = Array.from({ length: 10000 }, (_, i) => bigRow(i)).join('');
    expect((await sendCommand(p, 'big')).toString()).toBe(rows);
    expect((await sendCommand(p, 'chunk')).toString()).toBe(rows);
    expect((await sendCommand(p, Buffer.concat([Buffer.from('sendbytes '), filled(100000)]))).toString()).toBe('rcvd:A00100000\n');
    const mixed = Buffer.concat([Buffer.from('sendbytes '), filled(10), Buffer.from('BB')]);
    expect((await sendCommand(p, mixed)).toString()).toBe('errs:2\n');
    expect((await sendCommand(p, 'hello')).toString()).toBe('unhandled command: hello');
  });

  it('streams a slow reply: chunks arrive before the reply ends', async () => {
    const p = socketPath();
    let finished = false;
    await serve(p, async (_request, reply) => {
      for (let i = 0; i < 5; i++) {
        await reply.write(`row ${i}\n`);
        await sleep(40);
      }
      finished = true;
    });
    const seen: Array<[string, boolean]> = [];
    for await (const chunk of streamCommand(p, 'x')) seen.push([chunk.toString(), finished]);
    expect(seen.map(([c]) => c).join('')).toBe('row 0\nrow 1\nrow 2\nrow 3\nrow 4\n');
    // The first chunks were seen while the handler was still running.
    expect(seen[0]![1]).toBe(false);
    expect(seen.length).toBeGreaterThanOrEqual(3);
  });

  it('streams the slow test command (1000 rows, 10 ms apart) in many chunks', async () => {
    const p = socketPath();
    await serve(p);
    let text = '';
    let chunks = 0;
    for await (const chunk of streamCommand(p, 'slow')) {
      text += chunk.toString();
      chunks++;
    }
    expect(text).toBe(Array.from({ length: 1000 }, (_, i) => bigRow(i)).join(''));
    expect(chunks).toBeGreaterThan(100);
  }, 60000);

  it('serves 8 threads x 500 concurrent requests, all answered correctly', async () => {
    const p = socketPath();
    await serve(p, (request) => Buffer.concat([Buffer.from('re:'), request]), { threads: 8 });
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        let ok = 0;
        for (let i = 0; i < 500; i++) {
          const body = `${k}-${i}-${'x'.repeat((i * 13) % 2000)}`;
          if ((await sendCommand(p, body)).toString() === `re:${body}`) ok++;
        }
        return ok;
      }),
    );
    expect(results).toEqual(Array(8).fill(500));
  }, 120000);

  it('answers 500 requests issued at once', async () => {
    const p = socketPath();
    await serve(p, (request) => request, { threads: 4 });
    const responses = await Promise.all(Array.from({ length: 500 }, (_, i) => sendCommand(p, `n${i}`)));
    expect(responses.map((r) => r.toString())).toEqual(Array.from({ length: 500 }, (_, i) => `n${i}`));
  }, 60000);
});

describe('large chunks sent from their own memory', () => {
  it('written and returned chunks of 64 KiB and more arrive intact, in order', async () => {
    const p = socketPath();
    const parts = [200000, 65536, 3, 1 << 20].map((n, k) => Buffer.alloc(n, 0x61 + k));
    await serve(p, async (_r, reply) => {
      await reply.write(parts[0]!);
      void reply.write(parts[1]!); // not awaited: queued behind the first
      await reply.write(parts[2]!);
      return parts[3]!;
    });
    const response = await sendCommand(p, 'x');
    expect(response.equals(Buffer.concat(parts))).toBe(true);
  });

  it('a client that leaves mid-response: the dropped chunks are released and the server serves on', async () => {
    const p = socketPath();
    let writesDone = 0;
    const server = await serve(p, async (request, reply, ctx) => {
      if (request.toString() === 'ping') return 'pong';
      const pending: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) pending.push(reply.write(Buffer.alloc(1 << 20, 0x30 + (i % 10))));
      await Promise.all(pending); // resolves, written or dropped
      writesDone++;
      expect(ctx.signal.aborted).toBe(true);
    });
    const stream = streamCommand(p, 'many');
    await stream.next();
    await stream.return!();
    await waitFor(() => writesDone === 1, 10000, 'the handler to see its writes settle');
    const pinned = (server as unknown as { pinned: Map<number, Uint8Array> }).pinned;
    await waitFor(() => pinned.size === 0, 5000, 'every borrowed chunk to be released');
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');
  });
});
