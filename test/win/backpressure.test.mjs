// Stream backpressure on Windows (docs/design.md#stream-backpressure):
// a streamCommand() whose consumer falls behind stops reading the pipe, so
// the server waits instead of the client buffering the whole response.
// The memory test runs server and client in child processes of their own,
// so that the RSS measured is the client's alone.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { createRequire } from 'node:module';

import { exited, fixtures, hang, ipcPath, rejection, repoRoot, serve, sipc, spawnNode, tempDir, waitFor, waitForLine } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const require = createRequire(import.meta.url);
const { native } = require(path.join(repoRoot, 'dist', 'native.js'));
const { streamCommand } = sipc;

const MiB = 1024 * 1024;

/**
 * A server whose handler writes `blocks` blocks of 1 MiB, each once the
 * previous one was taken; `written()` counts the blocks taken so far and
 * `ended` settles when the handler stops (a write rejected once the client
 * went away).
 */
async function blockServer(t, p, blocks) {
  let written = 0;
  let ended;
  const handlerEnded = new Promise((resolve) => (ended = resolve));
  const block = Buffer.alloc(MiB, 'w');
  await serve(t, p, async (_request, reply) => {
    try {
      for (let i = 0; i < blocks; i++) {
        await reply.write(block);
        written++;
      }
    } finally {
      ended();
    }
  });
  return { written: () => written, ended: handlerEnded };
}

/** Waits until `count()` stays the same for `quietMs`; returns it. */
async function settled(count, quietMs = 1000) {
  let last = -1;
  let since = Date.now();
  await waitFor(
    () => {
      const now = count();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    30000,
    'the server to stop writing',
  );
  return last;
}

describe('stream backpressure (Pause/Resume on the completion-port thread)', () => {
  it('a 200 MiB stream, left unread for 10 s and then read at 20 ms per MiB, grows the client by less than 64 MB, every byte in order', async (t) => {
    const p = ipcPath(t);
    const server = spawnNode(t, [path.join(fixtures, 'stream-server.js'), p]);
    await waitForLine(server, /listening/);
    const client = spawnNode(t, [path.join(fixtures, 'slow-stream-client.js'), p, '200', '20', String(MiB), '10000']);
    const line = await waitForLine(client, /^\{/, 170_000);
    assert.equal(await exited(client), 0);
    const result = JSON.parse(line);
    console.log(`200 MiB stream, slow consumer: client RSS growth ${(result.growthBytes / 1e6).toFixed(1)} MB`);
    assert.equal(result.bytes, 200 * MiB);
    assert.equal(result.inOrder, true);
    assert.ok(result.growthBytes < 64 * 1000 * 1000, `client grew by ${result.growthBytes} bytes`);
  }, 180_000);

  // The native hand-over bound (4 MiB handed to JS and not yet taken)
  // holds while the JS thread does not run, where the JS pause cannot act.
  it('a JS thread busy for 2 s in the middle of a 256 MiB stream grows the client by less than 16 MB and holds the server back', async (t) => {
    const p = ipcPath(t);
    const progress = path.join(tempDir(t), 'progress');
    const server = spawnNode(t, [path.join(fixtures, 'stream-server.js'), p, progress]);
    await waitForLine(server, /listening/);
    const client = spawnNode(t, [path.join(fixtures, 'starved-stream-client.js'), p, '256', '2000', progress]);
    const line = await waitForLine(client, /^\{/, 170_000);
    assert.equal(await exited(client), 0);
    const result = JSON.parse(line);
    console.log(
      `256 MiB stream, JS thread busy: client RSS growth ${(result.growthBytes / 1e6).toFixed(1)} MB, ` +
        `server sent ${(result.serverSentWhileBusy / MiB).toFixed(0)} MiB meanwhile`,
    );
    assert.equal(result.bytes, 256 * MiB);
    assert.equal(result.inOrder, true);
    assert.ok(result.growthBytes < 16 * 1000 * 1000, `client grew by ${result.growthBytes} bytes`);
    assert.ok(result.serverSentWhileBusy < 32 * MiB, `the server sent ${result.serverSentWhileBusy} bytes`);
  }, 180_000);

  it('a stream whose consumer stops holds the server back, and an abort still ends it', async (t) => {
    const p = ipcPath(t);
    const server = await blockServer(t, p, 256);
    const controller = new AbortController();
    const stream = streamCommand(p, 'x', { signal: controller.signal });
    await stream.next(); // then nothing is taken any more
    const written = await settled(server.written);
    console.log(`consumer stopped after one chunk: the server wrote ${written} of 256 MiB`);
    // The high-water mark (1 MiB) plus what was in flight and in the pipe.
    assert.ok(written < 32, `the server wrote ${written} MiB to a consumer that stopped`);
    controller.abort();
    const error = await rejection((async () => {
      for await (const chunk of stream) void chunk;
    })());
    assert.equal(error.name, 'AbortError');
    await server.ended; // the pipe closed: the server's pending write failed
  });

  it('a paused stream still times out (the deadline runs while paused)', async (t) => {
    const p = ipcPath(t);
    const server = await blockServer(t, p, 256);
    const started = Date.now();
    const stream = streamCommand(p, 'x', { timeoutMs: 3000 });
    let received = (await stream.next()).value.length;
    const written = await settled(server.written);
    assert.ok(written < 32, `the server wrote ${written} MiB to a consumer that stopped`);
    await server.ended; // the timeout closed the pipe while the stream was paused
    const error = await rejection((async () => {
      for await (const chunk of stream) received += chunk.length;
    })());
    assert.equal(error.code, 'ERR_IPC_TIMEOUT');
    assert.ok(received < 256 * MiB, `received all ${received} bytes`);
    assert.ok(Date.now() - started >= 2900);
  });

  it('a pause before the response starts holds back its first read; resume posts it', async (t) => {
    const p = ipcPath(t);
    const server = await blockServer(t, p, 64);
    const stream = streamCommand(p, 'x');
    // Queued behind the start: the exchange is still connecting or
    // writing its request when the pause arrives. (`id` is the stream's
    // native exchange id, private in TypeScript.)
    native.clientPause(stream.id);
    const written = await settled(server.written);
    console.log(`stream paused from the start: the server wrote ${written} of 64 MiB`);
    assert.ok(written < 32, `the server wrote ${written} MiB to a stream paused from the start`);
    native.clientResume(stream.id);
    let bytes = 0;
    for await (const chunk of stream) bytes += chunk.length;
    assert.equal(bytes, 64 * MiB);
  });

  it('pause and resume of exchanges that are over (completed, aborted, timed out, never started) are ignored', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, async (request, reply) => {
      if (request.toString() === 'hang') await hang();
      for (let i = 0; i < 8; i++) await reply.write(Buffer.alloc(MiB, 'm'));
    });
    const drain = async (stream) => {
      let bytes = 0;
      for await (const chunk of stream) bytes += chunk.length;
      return bytes;
    };
    const completed = streamCommand(p, 'x');
    assert.equal(await drain(completed), 8 * MiB);
    const controller = new AbortController();
    const aborted = streamCommand(p, 'hang', { signal: controller.signal });
    controller.abort();
    assert.equal((await rejection(drain(aborted))).name, 'AbortError');
    const timedOut = streamCommand(p, 'hang', { timeoutMs: 100 });
    assert.equal((await rejection(drain(timedOut))).code, 'ERR_IPC_TIMEOUT');
    const gone = [completed.id, aborted.id, timedOut.id, 0, 2 ** 40];
    assert.ok(gone.slice(0, 3).every((id) => typeof id === 'number' && id > 0));
    for (const id of gone) {
      native.clientPause(id);
      native.clientResume(id);
      native.clientResume(id);
    }
    // The client thread goes on serving: a new stream arrives whole.
    assert.equal(await drain(streamCommand(p, 'x')), 8 * MiB);
  });
});
