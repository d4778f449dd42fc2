// The baseline: what a competent Node.js user would write with `node:net`
// instead of using simple-ipc. Plain event-loop server, one connection per
// request, pkt-line framing written by hand (see docs/protocol.md#pkt-line-framing).
//
// It is meant to be honest: no deliberate slowness, and no tricks that a
// normal application could not use either (e.g. it builds the response for
// the user, it hands the handler one contiguous request Buffer).
//
// Exports:
//   createBaselineServer(path, handler) -> Promise<{ close(): Promise<void>, server }>
//     handler(request: Buffer) -> Buffer | string | Array<chunk> | AsyncIterable<chunk>
//       | Promise<one of those>
//   baselineSendCommand(path, request, opts?) -> Promise<Buffer>
//   PktLineParser, encodeMessage, encodePacket (used by the harness and tests)

import net from 'node:net';
import fs from 'node:fs';

export const MAX_PACKET = 65520; // total packet length, header included
export const MAX_PAYLOAD = MAX_PACKET - 4; // 65516
const FLUSH = Buffer.from('0000', 'latin1');
// Above this size a message is written as header/payload pieces through a
// corked socket (one writev) instead of being copied into one new Buffer.
const COPY_LIMIT = 64 * 1024;

const HEX = Buffer.from('0123456789abcdef', 'latin1');

function writeHeader(target, offset, len) {
  target[offset] = HEX[(len >> 12) & 15];
  target[offset + 1] = HEX[(len >> 8) & 15];
  target[offset + 2] = HEX[(len >> 4) & 15];
  target[offset + 3] = HEX[len & 15];
}

function hexValue(c) {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // a-f
  if (c >= 0x41 && c <= 0x46) return c - 0x37; // A-F
  return -1;
}

export class PktLineError extends Error {
  constructor(message, code = 'EPROTO') {
    super(message);
    this.code = code;
  }
}

function toBuffer(data) {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('chunk must be a string or Uint8Array');
}

// Incremental pkt-line reader for one message. Feed it every chunk read from
// the socket; it copes with headers and payloads split across reads.
//   push(chunk) -> -1 while the message is incomplete, otherwise the number
//                  of bytes of `chunk` consumed (including the end packet).
//   Throws PktLineError on 0003, a non-hex header or a length > 65520.
// Ends without error at 0000 (flush), 0001 (delim), 0002 (response end) and
// 0004 (empty data packet), as Git's reader does.
// Payload pieces are kept as views of the chunks read from the socket (Node
// hands out a fresh Buffer per read), and joined once at the end.
export class PktLineParser {
  constructor(onPayload) {
    this.parts = [];
    this.length = 0;
    this.remaining = 0; // payload bytes still expected for the current packet
    this.header = Buffer.alloc(4);
    this.headerLen = 0;
    this.done = false;
    this.endPacket = null; // '0000' | '0001' | '0002' | '0004' once done
    this.onPayload = onPayload; // optional: streaming consumer instead of collecting
  }

  push(chunk) {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        const piece = take === n && i === 0 ? chunk : chunk.subarray(i, i + take);
        if (this.onPayload) this.onPayload(piece);
        else this.parts.push(piece);
        this.length += take;
        this.remaining -= take;
        i += take;
        continue;
      }
      // Header: fast path when all 4 bytes are in this chunk.
      let h;
      if (this.headerLen === 0 && n - i >= 4) {
        h = chunk;
        i += 4;
      } else {
        while (this.headerLen < 4 && i < n) this.header[this.headerLen++] = chunk[i++];
        if (this.headerLen < 4) break;
        h = this.header;
        this.headerLen = 0;
      }
      const off = h === chunk ? i - 4 : 0;
      const a = hexValue(h[off]);
      const b = hexValue(h[off + 1]);
      const c = hexValue(h[off + 2]);
      const d = hexValue(h[off + 3]);
      if ((a | b | c | d) < 0) throw new PktLineError('pkt-line: bad header (not hex)');
      const len = (a << 12) | (b << 8) | (c << 4) | d;
      if (len <= 4) {
        if (len === 3) throw new PktLineError('pkt-line: invalid packet length 0003');
        this.done = true;
        this.endPacket = ['0000', '0001', '0002', '', '0004'][len];
        return i;
      }
      if (len > MAX_PACKET) throw new PktLineError(`pkt-line: packet length ${len} > ${MAX_PACKET}`);
      this.remaining = len - 4;
    }
    return -1;
  }

  // True when no byte of a packet is pending (used to tell EOF at a packet
  // boundary from EOF inside one; both are errors before the flush).
  get atBoundary() {
    return this.remaining === 0 && this.headerLen === 0;
  }

  message() {
    if (this.parts.length === 1) return this.parts[0];
    return Buffer.concat(this.parts, this.length);
  }
}

// Frame `data` as data packets (no flush). Returns a list of Buffers to write.
// Small messages become one Buffer; big ones stay header/payload pieces so the
// payload is never copied (written with cork() -> one writev).
export function encodePacket(data, withFlush = false) {
  const buf = toBuffer(data);
  const len = buf.length;
  if (len === 0) return withFlush ? [FLUSH] : [];
  const packets = Math.ceil(len / MAX_PAYLOAD);
  const total = len + packets * 4 + (withFlush ? 4 : 0);
  if (total <= COPY_LIMIT) {
    const out = Buffer.allocUnsafe(total);
    let o = 0;
    for (let p = 0; p < len; p += MAX_PAYLOAD) {
      const plen = Math.min(MAX_PAYLOAD, len - p);
      writeHeader(out, o, plen + 4);
      buf.copy(out, o + 4, p, p + plen);
      o += plen + 4;
    }
    if (withFlush) FLUSH.copy(out, o);
    return [out];
  }
  const pieces = [];
  const headers = Buffer.allocUnsafe(packets * 4);
  for (let p = 0, k = 0; p < len; p += MAX_PAYLOAD, k += 4) {
    const plen = Math.min(MAX_PAYLOAD, len - p);
    writeHeader(headers, k, plen + 4);
    pieces.push(headers.subarray(k, k + 4), buf.subarray(p, p + plen));
  }
  if (withFlush) pieces.push(FLUSH);
  return pieces;
}

export function encodeMessage(data) {
  return encodePacket(data, true);
}

// Write pieces; resolves when the socket can take more (backpressure).
function writePieces(socket, pieces) {
  let ok = true;
  if (pieces.length === 1) {
    ok = socket.write(pieces[0]);
  } else {
    socket.cork();
    for (const p of pieces) ok = socket.write(p);
    socket.uncork();
  }
  return ok;
}

function waitDrain(socket) {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error('socket closed while writing'));
    };
    const cleanup = () => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
    };
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

function isIterable(x) {
  return x != null && typeof x !== 'string' && !(x instanceof Uint8Array) &&
    (typeof x[Symbol.asyncIterator] === 'function' || typeof x[Symbol.iterator] === 'function');
}

async function sendResponse(socket, result) {
  if (result == null) {
    socket.end(FLUSH);
    return;
  }
  if (!isIterable(result)) {
    // One chunk: frame it with the flush and end the connection.
    const pieces = encodeMessage(result);
    if (pieces.length === 1) {
      socket.end(pieces[0]);
    } else {
      writePieces(socket, pieces);
      socket.end();
    }
    return;
  }
  // Streamed reply: each chunk goes out as data packets at once; the flush
  // ends the message. Respect backpressure.
  if (typeof result[Symbol.asyncIterator] === 'function') {
    for await (const chunk of result) {
      if (socket.destroyed) throw new Error('client went away');
      const pieces = encodePacket(chunk);
      if (pieces.length && !writePieces(socket, pieces)) await waitDrain(socket);
    }
  } else {
    for (const chunk of result) {
      if (socket.destroyed) throw new Error('client went away');
      const pieces = encodePacket(chunk);
      if (pieces.length && !writePieces(socket, pieces)) await waitDrain(socket);
    }
  }
  socket.end(FLUSH);
}

// Start a server at `path`. A stale socket file is removed first (a
// competent user does this; we do not probe for a live owner here).
export async function createBaselineServer(path, handler) {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // EPIPE/ECONNRESET: client went away
    const parser = new PktLineParser();
    const onData = (chunk) => {
      let used;
      try {
        used = parser.push(chunk);
      } catch {
        socket.destroy(); // protocol error: close without a response
        return;
      }
      if (used < 0) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      let result;
      try {
        result = handler(parser.message());
      } catch {
        socket.destroy(); // a failed handler never looks like a response
        return;
      }
      Promise.resolve(result)
        .then((r) => sendResponse(socket, r))
        .catch(() => socket.destroy());
    };
    // EOF before the flush: truncated request, drop it.
    const onEnd = () => socket.destroy();
    socket.on('data', onData);
    socket.on('end', onEnd);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    path,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve()); // libuv unlinks the socket file it bound
        for (const s of sockets) s.destroy();
      });
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connectOnce(path) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    const onError = (err) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

// Connect, retrying for up to about a second while the server's backlog is
// full (EAGAIN on a non-blocking Unix socket) or nobody accepts
// (ECONNREFUSED), like the spec's client does.
async function connect(path) {
  const deadline = Date.now() + 1000;
  let delay = 1;
  for (;;) {
    try {
      return await connectOnce(path);
    } catch (err) {
      if ((err.code !== 'EAGAIN' && err.code !== 'ECONNREFUSED') || Date.now() > deadline) throw err;
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
  }
}

// Send one request on a new connection; resolve with the whole response.
// opts.timeoutMs: fail if the exchange takes longer (default: no limit).
export async function baselineSendCommand(path, request, opts = {}) {
  const socket = await connect(path);
  return new Promise((resolve, reject) => {
    const parser = new PktLineParser();
    let timer = null;
    let settled = false;
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        const err = new Error(`timed out after ${opts.timeoutMs} ms`);
        err.code = 'ETIMEDOUT';
        finish(err);
      }, opts.timeoutMs);
    }
    socket.on('data', (chunk) => {
      let used;
      try {
        used = parser.push(chunk);
      } catch (err) {
        finish(err);
        return;
      }
      if (used >= 0) finish(null, parser.message());
    });
    socket.on('end', () => {
      const err = new Error('connection closed before the flush packet (truncated response)');
      err.code = 'ECONNRESET';
      finish(err);
    });
    socket.on('error', (err) => finish(err));
    writePieces(socket, encodeMessage(request));
  });
}
