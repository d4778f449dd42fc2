// Clients that misbehave: silent and half-sent connections, and load (1000
// connections at once; 200 silent and 200 dribbling clients beside a normal
// one, against a server in its own process that must still stop promptly).
// Liveness probes, garbage and clients that vanish mid-request are with the
// reader rules, in test/framing.test.ts.
import type * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, test } from 'vitest';

import { sendCommand } from '../../dist/index.js';
import { socketPath } from '../helpers';
import { rawConnect } from '../raw-peers';
import { startServerChild } from '../server-child';
import { serve } from '../servers';

describe('clients that misbehave', () => {
  it('silent connections do not hold the workers: 1 thread, 20 idle clients, others still served', async () => {
    const p = socketPath();
    await serve(p, () => 'pong', { threads: 1 });
    await Promise.all(Array.from({ length: 20 }, () => rawConnect(p)));
    const half = await rawConnect(p);
    half.write('0010half');
    const started = Date.now();
    for (let i = 0; i < 10; i++) expect((await sendCommand(p, 'x')).toString()).toBe('pong');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('load and slow clients', () => {
  test('1000 connections opened at once are all served', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { threads: 4 });
    const answers = await Promise.all(
      Array.from({ length: 1000 }, () => sendCommand(path, 'ping', { connectTimeoutMs: 30000, timeoutMs: 60000 })),
    );
    expect(answers.every((a) => a.toString() === 'pong')).toBe(true);
    expect(server.count('clientError')).toBe(0);

    // And 1000 raw connections held open at once (default maxConnections
    // is 1024): still answered, then all closed.
    const held: net.Socket[] = [];
    for (let i = 0; i < 10; i++) held.push(...(await Promise.all(Array.from({ length: 100 }, () => rawConnect(path)))));
    expect((await sendCommand(path, 'ping', { timeoutMs: 30000 })).toString()).toBe('pong');
    for (const s of held) s.destroy();
  });

  test('200 silent and 200 dribbling clients do not delay a normal client; stop does not wait for them', async () => {
    const path = socketPath();
    const server = await startServerChild(path, { threads: 2 });
    const silent: net.Socket[] = [];
    const dribbling: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      silent.push(...(await Promise.all(Array.from({ length: 50 }, () => rawConnect(path)))));
      dribbling.push(...(await Promise.all(Array.from({ length: 50 }, () => rawConnect(path)))));
    }
    for (const s of [...silent, ...dribbling]) s.on('error', () => {});
    // One byte a second each, of a request that would be 64 KiB long.
    const request = Buffer.from('fff0' + 'z'.repeat(100));
    let offset = 0;
    const timer = setInterval(() => {
      const byte = request.subarray(offset, offset + 1);
      offset = (offset + 1) % request.length;
      for (const s of dribbling) if (!s.destroyed) s.write(byte);
    }, 1000);
    try {
      const latencies: number[] = [];
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        const started = Date.now();
        const answer = await sendCommand(path, 'ping', { timeoutMs: 15000 });
        expect(answer.toString()).toBe('pong');
        latencies.push(Date.now() - started);
        await sleep(20);
      }
      latencies.sort((a, b) => a - b);
      console.log(
        `pings beside 400 idle/slow clients: ${latencies.length}, median ${latencies[latencies.length >> 1]} ms, max ${latencies[latencies.length - 1]} ms`,
      );
      expect(latencies.length).toBeGreaterThan(5);
      // None of them was dropped for a limit: they are within every limit.
      expect(server.count('clientError')).toBe(0);
    } finally {
      clearInterval(timer);
    }
    // Stop: the 400 stalled clients are dropped, never waited for (the
    // default close timeout is 30 s; this must be far quicker).
    const started = Date.now();
    server.child.kill('SIGTERM');
    const close = await server.waitEvent((e) => e.event === 'close', 20000, 'close');
    expect(close.reason).toBe('closed');
    expect(Date.now() - started).toBeLessThan(10000);
  });
});
