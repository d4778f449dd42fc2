// Large responses. Those of 64 KiB and more reach JS without a second pass
// over the bytes: an external Buffer over the memory the client read into,
// which V8 counts as external memory while it lives and forgets once
// collected. And streamCommand() reads no faster than its consumer: past a
// high-water mark the native side stops reading and the server waits (its
// reply.write() promises stay pending), so memory stays bounded however
// large the response; there server and client run in child processes of
// their own, so that the RSS measured is the client's alone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { describe, expect, it } from 'vitest';

import { createServer, sendCommand, streamCommand } from '../../dist/index.js';
import { exited, fixtures, onCleanup, socketPath, spawnNode, waitForLine } from '../helpers';

v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

const MB = 1000 * 1000;

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 16)) & 0xff;
  return b;
}

describe('large responses', () => {
  it('arrive intact at sizes around the 64 KiB threshold and far above it', async () => {
    const p = socketPath();
    const bodies = new Map<string, Buffer>();
    for (const size of [65535, 65536, 65537, 3 * MB]) bodies.set(String(size), pattern(size));
    const server = await createServer(p, (r) => bodies.get(r.toString()) ?? 'unknown');
    onCleanup(() => server.close({ force: true }));
    for (const [key, body] of bodies) {
      const response = await sendCommand(p, key);
      expect(response.length).toBe(body.length);
      expect(response.equals(body)).toBe(true);
    }
    let streamed = 0;
    for await (const chunk of streamCommand(p, String(3 * MB))) streamed += chunk.length;
    expect(streamed).toBe(3 * MB);
  });

  it('count as external memory while referenced and are freed once collected', async () => {
    const p = socketPath();
    const body = Buffer.alloc(40 * MB, 'e');
    const server = await createServer(p, () => body);
    onCleanup(() => server.close({ force: true }));
    await sendCommand(p, 'warm-up');
    collect();
    const before = process.memoryUsage().external;
    let response: Buffer | null = await sendCommand(p, 'x');
    expect(response.length).toBe(40 * MB);
    // V8 sees the 40 MB (external Buffer: counted by the addon; Electron
    // builds: a JS-owned copy). Other external memory may move a little.
    const held = process.memoryUsage().external - before;
    expect(held).toBeGreaterThanOrEqual(38 * MB);
    response = null;
    // Finalizers run after a collection, on the next turns of the loop.
    for (let i = 0; i < 20 && process.memoryUsage().external - before >= 20 * MB; i++) {
      collect();
      await new Promise((r) => setImmediate(r));
    }
    expect(process.memoryUsage().external - before).toBeLessThan(20 * MB);
  });
});

describe('stream backpressure', () => {
  it('a 300 MiB response read at 5 ms per chunk grows the client by less than 32 MB', async () => {
    const p = socketPath();
    const server = spawnNode(path.join(fixtures, 'stream-server.js'), [p]);
    await waitForLine(server, /listening/);
    const client = spawnNode(path.join(fixtures, 'slow-stream-client.js'), [p, '300', '5']);
    const line = await waitForLine(client, /^\{/, 120_000);
    expect(await exited(client)).toBe(0);
    const result = JSON.parse(line) as { bytes: number; inOrder: boolean; growthBytes: number };
    expect(result.bytes).toBe(300 * 1024 * 1024);
    expect(result.inOrder).toBe(true);
    expect(result.growthBytes).toBeLessThan(32 * 1000 * 1000);
  }, 180_000);

  // The JS thread's pause cannot act while that thread does not run; the
  // native hand-over bound (4 MiB handed to JS and not yet taken) holds
  // anyway, and the server is held back. Without it the client reads on
  // at the server's pace (the busy loop then ends once the server has
  // sent 64 MiB: see the fixture).
  it('a JS thread busy for 2 s in the middle of a 256 MiB stream grows the client by less than 16 MB', async () => {
    const p = socketPath();
    const progress = `${p}.progress`;
    onCleanup(() => fs.rmSync(progress, { force: true }));
    const server = spawnNode(path.join(fixtures, 'stream-server.js'), [p, progress]);
    await waitForLine(server, /listening/);
    const client = spawnNode(path.join(fixtures, 'starved-stream-client.js'), [p, '256', '2000', progress]);
    const line = await waitForLine(client, /^\{/, 120_000);
    expect(await exited(client)).toBe(0);
    const result = JSON.parse(line) as { bytes: number; inOrder: boolean; growthBytes: number; serverSentWhileBusy: number };
    expect(result.bytes).toBe(256 * 1024 * 1024);
    expect(result.inOrder).toBe(true);
    expect(result.growthBytes).toBeLessThan(16 * 1000 * 1000);
    // Held back: the socket's buffers and the bound, not the response.
    expect(result.serverSentWhileBusy).toBeLessThan(32 * 1024 * 1024);
  }, 180_000);
});
