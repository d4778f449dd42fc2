// Helpers of the hardening tests: a server in a child process that reports
// its events as JSON lines, and raw node:net peers that send exact bytes.
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

import { fixtures, spawnNode } from './helpers';
import { connectLikeBlocking } from './raw-peers';

export interface ServerEvent {
  event: string;
  [key: string]: unknown;
}

export interface ServerChild {
  child: ChildProcess & { output: () => string };
  pid: number;
  events: ServerEvent[];
  /** Resolves with the first event (already seen or to come) matching `pred`. */
  waitEvent(pred: (e: ServerEvent) => boolean, timeoutMs?: number, what?: string): Promise<ServerEvent>;
  count(event: string, key?: string, value?: unknown): number;
}

/** Starts test/fixtures/hardening-server.js and waits until it listens. */
export async function startServerChild(
  socketPath: string,
  options: Record<string, unknown> = {},
  spawnOptions: { env?: NodeJS.ProcessEnv } = {},
): Promise<ServerChild> {
  const child = spawnNode(path.join(fixtures, 'hardening-server.js'), [socketPath, JSON.stringify(options)], spawnOptions);
  const events: ServerEvent[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line) as ServerEvent);
      } catch {
        // not ours (a warning): ignore
      }
      for (const w of waiters) w();
    }
  });
  const waitEvent = (pred: (e: ServerEvent) => boolean, timeoutMs = 20000, what = 'event') =>
    new Promise<ServerEvent>((resolve, reject) => {
      const check = () => {
        const found = events.find(pred);
        if (found) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${what} within ${timeoutMs} ms; output: ${child.output().slice(-2000)}`));
      }, timeoutMs);
      waiters.add(check);
      child.once('exit', () => setTimeout(check, 50));
      check();
    });
  // Only catches a child that hangs: under load a Node child can take
  // more than 20 s to start and listen.
  const first = await waitEvent((e) => e.event === 'listening' || e.event === 'error', 60000, 'listening');
  if (first.event === 'error') throw new Error(`server child failed: ${JSON.stringify(first)}`);
  const count = (event: string, key?: string, value?: unknown) =>
    events.filter((e) => e.event === event && (key === undefined || e[key] === value)).length;
  return { child, pid: first.pid as number, events, waitEvent, count };
}

/** Encodes `payload` as pkt-lines (lowercase headers) and a flush. */
export function frame(payload: Buffer | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += 65516) {
    const piece = data.subarray(off, off + 65516);
    parts.push(Buffer.from((piece.length + 4).toString(16).padStart(4, '0')), piece);
  }
  parts.push(Buffer.from('0000'));
  return Buffer.concat(parts);
}

export interface RawResult {
  data: Buffer;
  /** 'close' (orderly), or the error code (ECONNRESET, EPIPE). */
  end: string;
}

/** Connects, sends `bytes` (optionally half-closes), reads until the server closes. */
export function rawExchange(socketPath: string, bytes: Buffer | string, options: { end?: boolean } = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    connectLikeBlocking(
      socketPath,
      (socket) => {
        const chunks: Buffer[] = [];
        let end = 'close';
        socket.on('data', (d) => chunks.push(d));
        socket.on('error', (e: NodeJS.ErrnoException) => {
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

/** Opens a connection that sends nothing; destroyed after the test. */
export function rawConnect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    connectLikeBlocking(
      socketPath,
      (socket) => {
        socket.on('error', () => {});
        resolve(socket);
      },
      reject,
    );
  });
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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
