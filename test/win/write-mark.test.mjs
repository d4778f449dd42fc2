// reply.write() and the write mark on Windows (docs/api.md, the handler's
// reply; docs/design.md#memory): the rule is the conversation core's, as
// on POSIX (test/reply-write-mark.test.ts). Here every reply goes through
// the pipe's queue and completions drain it on the completion-port
// thread, concurrently: the checks here are those that hold whatever the
// completions do. A handler awaiting its writes to a client that stops
// reading stops, holding at most the mark plus the chunk it waits for;
// copied chunks resolve at once until a mark's worth of them was
// written; once the client reads, every chunk arrives intact, in order.
import assert from 'node:assert/strict';

import { frame, gitPipeName, ipcPath, rawConnect, serve, unframe } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const MARK = 64 * 1024; // the write mark, as documented
const framed = (n) => n + 4 * Math.ceil(n / 65516);

/** Awaits writes until one does not resolve within a turn of the event loop, or `capBytes` went out. */
async function writeUntilOneWaits(server, reply, chunkSize, capBytes) {
  const borrowed = chunkSize >= 64 * 1024;
  let chunk = Buffer.alloc(chunkSize);
  for (let i = 0; i * chunkSize < capBytes; i++) {
    if (borrowed) chunk = Buffer.alloc(chunkSize);
    chunk.fill(i & 0xff);
    const written = reply.write(chunk);
    const atOnce = await Promise.race([written.then(() => true), new Promise((resolve) => setImmediate(() => resolve(false)))]);
    if (!atOnce) return { atOnce: i, waiting: written, bytesOut: server.stats().bytesOut };
  }
  return { atOnce: Math.ceil(capBytes / chunkSize), waiting: null, bytesOut: server.stats().bytesOut };
}

describe('reply.write() and the write mark (named pipes)', () => {
  for (const chunkSize of [1020, 16 * 1024, 100 * 1024]) {
    it(`a handler awaiting ${chunkSize}-byte writes to a client that stops reading stops, holding at most the mark and one chunk`, async (t) => {
      const p = ipcPath(t);
      let report;
      const reported = new Promise((resolve) => (report = resolve));
      const server = await serve(
        t,
        p,
        async (_request, reply) => {
          const seen = await writeUntilOneWaits(server, reply, chunkSize, 64 * 1024 * 1024);
          report(seen);
          if (seen.waiting !== null) await seen.waiting;
          return 'end';
        },
        { requestTimeoutMs: 0 },
      );
      const client = await rawConnect(t, gitPipeName(p));
      client.pause();
      client.write(frame('stream'));
      const seen = await reported;
      assert.notEqual(seen.waiting, null, 'the writes never waited');
      const queued = (seen.atOnce + 1) * framed(chunkSize) - seen.bytesOut;
      assert.ok(queued > 0, `queued ${queued}`);
      assert.ok(queued <= (chunkSize >= 64 * 1024 ? framed(chunkSize) : MARK + framed(chunkSize)), `queued ${queued}`);
      // Copied chunks resolved at once until the queue (which holds every
      // chunk not yet completed) passed the mark: at least a mark's worth,
      // less one chunk. Without the mark each waits for its completion.
      if (chunkSize < 64 * 1024) {
        assert.ok((seen.atOnce + 1) * framed(chunkSize) > MARK, `${seen.atOnce} writes resolved at once`);
      }

      const bytes = await new Promise((resolve) => {
        const parts = [];
        client.on('data', (d) => parts.push(d));
        client.once('close', () => resolve(Buffer.concat(parts)));
        client.resume();
      });
      const { payload, complete } = unframe(bytes);
      assert.ok(complete);
      const chunks = seen.atOnce + 1;
      assert.equal(payload.length, chunks * chunkSize + 3);
      for (let i = 0; i < chunks; i++) {
        assert.ok(payload.subarray(i * chunkSize, (i + 1) * chunkSize).every((b) => b === (i & 0xff)), `chunk ${i}`);
      }
      assert.equal(payload.subarray(chunks * chunkSize).toString(), 'end');
    });
  }
});
