// A server in a child process (test/fixtures/server-child.js) that reports
// its events as JSON lines: killed, stopped, measured and policed apart
// from the test runner.
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';

import { fixtures, spawnNode } from './helpers';

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

/** Starts test/fixtures/server-child.js and waits until it listens. */
export async function startServerChild(
  socketPath: string,
  options: Record<string, unknown> = {},
  spawnOptions: { env?: NodeJS.ProcessEnv } = {},
): Promise<ServerChild> {
  const child = spawnNode(path.join(fixtures, 'server-child.js'), [socketPath, JSON.stringify(options)], spawnOptions);
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
