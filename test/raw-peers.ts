// Raw node:net peers for crafting and capturing exact bytes on the wire.
import * as net from 'node:net';

import { onCleanup } from './helpers';

// node:net fails a Unix-socket connect with EAGAIN when the server's
// listen backlog is full (Linux, non-blocking connect). A blocking client
// such as Git's waits instead, and so do these raw peers: on a busy
// machine a server can be slow to accept while a test opens 50 and more
// connections at once.
export function connectLikeBlocking(path: string, onConnect: (socket: net.Socket) => void, onError: (e: Error) => void): void {
  const deadline = Date.now() + 30000;
  const attempt = () => {
    const socket = net.createConnection(path);
    onCleanup(() => socket.destroy());
    const early = (e: NodeJS.ErrnoException) => {
      if (e.code === 'EAGAIN' && Date.now() < deadline) setTimeout(attempt, 5 + Math.random() * 20);
      else onError(e);
    };
    socket.once('error', early);
    socket.once('connect', () => {
      socket.off('error', early);
      onConnect(socket);
    });
  };
  attempt();
}

export interface RawResult {
  data: Buffer;
  /** 'close' (orderly), or the error code (ECONNRESET, EPIPE). */
  end: string;
}

/**
 * Sends `bytes` on a new connection (optionally half-closes), then reads
 * until the server closes; says how the connection ended.
 */
export function rawExchangeResult(path: string, bytes: Buffer | string, options: { end?: boolean } = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    connectLikeBlocking(
      path,
      (socket) => {
        const chunks: Buffer[] = [];
        let end = 'close';
        socket.on('data', (d) => chunks.push(d));
        socket.on('error', (e: NodeJS.ErrnoException) => {
          // A reset after the server closed is just the end here.
          if (e.code === 'ECONNRESET' || e.code === 'EPIPE') end = e.code;
          else reject(e);
        });
        socket.on('close', () => resolve({ data: Buffer.concat(chunks), end }));
        socket.write(bytes);
        if (options.end) socket.end();
      },
      reject,
    );
  });
}

/** Sends `bytes` on a new connection, then reads until the server closes. */
export async function rawExchange(path: string, bytes: Buffer | string, options: { end?: boolean } = {}): Promise<Buffer> {
  return (await rawExchangeResult(path, bytes, options)).data;
}

/** Opens a connection that sends nothing until the test writes; destroyed after the test. */
export function rawConnect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) =>
    connectLikeBlocking(
      path,
      (socket) => {
        socket.on('error', () => {}); // later errors (a reset by the server): nothing to report
        resolve(socket);
      },
      reject,
    ),
  );
}

/** Resolves when `socket` is closed by the other end (or errors). */
export function closedByPeer(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.on('error', () => {});
    socket.once('close', () => resolve());
    socket.resume();
  });
}

/**
 * A fake server: records each request (raw bytes until the client stops
 * sending a flush-terminated message, or a short idle time) and answers
 * with `respond(request)` raw bytes, then closes (or not, with `hold`).
 */
export async function rawServer(
  path: string,
  respond: (request: Buffer) => Buffer | string | Array<Buffer | string>,
): Promise<{ requests: Buffer[]; close: () => Promise<void> }> {
  const requests: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let received = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', async (d) => {
      received = Buffer.concat([received, d]);
      if (!endsWithFlush(received)) return;
      requests.push(received);
      const answer = respond(received);
      const parts = Array.isArray(answer) ? answer : [answer];
      for (const part of parts) {
        socket.write(part);
        await new Promise((r) => setTimeout(r, 5));
      }
      socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  onCleanup(close);
  return { requests, close };
}

// True when `bytes` holds a whole pkt-line message ending in a flush.
function endsWithFlush(bytes: Buffer): boolean {
  let offset = 0;
  while (offset + 4 <= bytes.length) {
    const len = parseInt(bytes.subarray(offset, offset + 4).toString('latin1'), 16);
    if (len === 0) return true;
    if (!(len >= 5)) return false;
    offset += len;
  }
  return false;
}

/** Encodes `payload` as pkt-lines with a flush, the reference way (lowercase). */
export function encode(payload: Buffer | string, maxPayload = 65516): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const parts: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += maxPayload) {
    const piece = data.subarray(offset, offset + maxPayload);
    parts.push(Buffer.from((piece.length + 4).toString(16).padStart(4, '0')), piece);
  }
  parts.push(Buffer.from('0000'));
  return Buffer.concat(parts);
}
