// reply.write() and the write mark (docs/api.md#createserver, the
// handler's reply; docs/design.md#memory): against a client that does not
// read, an awaited write resolves at once while the conversation's queue
// holds at most 64 KiB, and waits for the kernel beyond it, so a handler
// that awaits its writes never queues without bound. Real sockets; the
// kernel's share is read from the server's bytesOut counter.
import type * as net from 'node:net';
import { describe, expect, it } from 'vitest';

import type { IpcServer, Reply } from '../dist/index.js';
import { onCleanup, posix, socketPath } from './helpers';
import { encode, rawConnect } from './raw-peers';
import { serve } from './servers';

const MARK = 64 * 1024; // the write mark, as documented
const HEADER = 4; // a pkt-line header

/** Framed size of a chunk of `n` payload bytes (one packet per 65516 bytes). */
const framed = (n: number) => n + HEADER * Math.ceil(n / 65516);

interface Stall {
  /** Writes whose promise was resolved without a turn of the event loop. */
  atOnce: number;
  /** The write that did not resolve at once (null: none within the cap). */
  waiting: Promise<void> | null;
  /** The server's bytesOut when it began to wait: what the kernel took. */
  bytesOut: number;
}

/**
 * Awaits writes of `chunkSize` bytes, one at a time, until one does not
 * resolve within a turn of the event loop, or `capBytes` were written
 * (a bug: the writes never wait). Each chunk is filled with its own byte
 * before its write, reusing one buffer for copied chunks (their promise
 * resolved: the buffer is the handler's again) and a new one for chunks
 * sent from their own memory.
 */
async function writeUntilOneWaits(server: IpcServer, reply: Reply, chunkSize: number, capBytes: number): Promise<Stall> {
  const borrowed = chunkSize >= 64 * 1024;
  let chunk = Buffer.alloc(chunkSize);
  for (let i = 0; i * chunkSize < capBytes; i++) {
    if (borrowed) chunk = Buffer.alloc(chunkSize);
    chunk.fill(i & 0xff);
    const written = reply.write(chunk);
    const atOnce = await Promise.race([
      written.then(() => true),
      new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
    ]);
    if (!atOnce) return { atOnce: i, waiting: written, bytesOut: server.stats().bytesOut };
  }
  return { atOnce: Math.ceil(capBytes / chunkSize), waiting: null, bytesOut: server.stats().bytesOut };
}

/** Reads everything until the server closes. */
function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.once('close', () => resolve(Buffer.concat(parts)));
    socket.resume();
  });
}

/** The payloads of a pkt-line response, and whether it ended with a flush. */
function unframe(bytes: Buffer): { payload: Buffer; flushed: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + HEADER <= bytes.length) {
    const len = parseInt(bytes.subarray(at, at + HEADER).toString(), 16);
    if (len === 0) return { payload: Buffer.concat(parts), flushed: at + HEADER === bytes.length };
    parts.push(bytes.subarray(at + HEADER, at + len));
    at += len;
  }
  return { payload: Buffer.concat(parts), flushed: false };
}

/**
 * A conversation whose client does not read: the handler writes chunks of
 * `chunkSize` until one waits, reports, then (once the client reads)
 * finishes with "end". Returns what the handler saw, and `drain`, which
 * makes the client read to the end and returns what it got.
 */
async function stall(chunkSize: number): Promise<Stall & { drain: () => Promise<{ payload: Buffer; flushed: boolean }> }> {
  const path = socketPath();
  let reportStall: (s: Stall) => void = () => {};
  const reported = new Promise<Stall>((resolve) => (reportStall = resolve));
  // 64 MiB: far beyond what the socket and the mark hold together.
  const capBytes = 64 * 1024 * 1024;
  const server: IpcServer = await serve(
    path,
    async (_request, reply) => {
      const seen = await writeUntilOneWaits(server, reply, chunkSize, capBytes);
      reportStall(seen);
      if (seen.waiting !== null) await seen.waiting;
      return 'end';
    },
    { requestTimeoutMs: 0 },
  );
  const client = await rawConnect(path);
  onCleanup(() => client.destroy());
  client.pause(); // reads nothing until the handler has stalled
  client.write(encode('stream'));
  return { ...(await reported), drain: async () => unframe(await readAll(client)) };
}

/** Every chunk arrived, in order, each with its own byte, then "end". */
function expectIntact(payload: Buffer, chunks: number, chunkSize: number): void {
  expect(payload.length).toBe(chunks * chunkSize + 3);
  for (let i = 0; i < chunks; i++) {
    const part = payload.subarray(i * chunkSize, (i + 1) * chunkSize);
    expect(part.every((b) => b === (i & 0xff))).toBe(true);
  }
  expect(payload.subarray(chunks * chunkSize).toString()).toBe('end');
}

describe.runIf(posix)('reply.write() and the write mark', () => {
  it('awaited writes into a full socket resolve at once until the queue holds the mark, then wait; nothing is lost', async () => {
    const chunkSize = 1020; // 1024 framed bytes
    const stalled = await stall(chunkSize);
    expect(stalled.waiting).not.toBeNull();
    // The queue when the handler began to wait: every chunk written so far
    // (the waiting one too) less what the kernel took. Without the mark it
    // would be the waiting chunk alone.
    const queued = (stalled.atOnce + 1) * framed(chunkSize) - stalled.bytesOut;
    expect(queued).toBeGreaterThan(MARK);
    expect(queued).toBeLessThanOrEqual(MARK + framed(chunkSize));
    // The chunks buffered under the mark were copies: the handler refilled
    // its buffer after each resolved write, and the client still got each
    // chunk's own byte.
    const { payload, flushed } = await stalled.drain();
    expect(flushed).toBe(true);
    expectIntact(payload, stalled.atOnce + 1, chunkSize);
  }, 60000);

  it.each([16 * 1024, 100 * 1024])(
    'a handler awaiting %i-byte writes to a client that stops reading stops after the socket and the mark are full',
    async (chunkSize) => {
      const stalled = await stall(chunkSize);
      expect(stalled.waiting).not.toBeNull();
      const queued = (stalled.atOnce + 1) * framed(chunkSize) - stalled.bytesOut;
      // What the handler holds: at most the mark plus the chunk it waits
      // for; chunks sent from their own memory (64 KiB and more) are never
      // buffered, so only the one that waits is queued.
      expect(queued).toBeGreaterThan(0);
      if (chunkSize >= 64 * 1024) {
        expect(queued).toBeLessThanOrEqual(framed(chunkSize));
      } else {
        expect(queued).toBeGreaterThan(MARK);
        expect(queued).toBeLessThanOrEqual(MARK + framed(chunkSize));
      }
      // The kernel's share is the socket's buffer, far below the cap.
      expect(stalled.bytesOut).toBeLessThan(8 * 1024 * 1024);
      const { payload, flushed } = await stalled.drain();
      expect(flushed).toBe(true);
      expectIntact(payload, stalled.atOnce + 1, chunkSize);
    },
    60000,
  );
});
