// `npm start` (dist/demo.js): runs, reports its numbers, and leaves nothing
// behind, also when interrupted.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { exited, repoRoot, tempDir, track, waitFor } from '../helpers.js';

const DEMO = path.join(repoRoot, 'dist', 'demo.js');

function startDemo(tmp: string) {
  return track(spawn(process.execPath, [DEMO], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** True while `pid` runs (a zombie waiting for its reaper does not count). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('shows ping, big, chunk, a stress run and the numbers, then removes everything', async () => {
    const tmp = tempDir('sipc-demo-');
    const demo = startDemo(tmp);
    expect(await exited(demo)).toBe(0);
    const out = demo.output();
    expect(out).toContain('$ simple-ipc send --token=ping\npong');
    expect(out).toMatch(/send --token=big\n {2}10,000 rows, 810,000 bytes in .* \(all rows correct\)/);
    expect(out).toMatch(/send --token=chunk\n.*\(all rows correct\)/);
    expect(out).toContain('8,000/8,000 requests, 0 errors');
    expect(out).toContain('sent:x50000000 rcvd:x50000000');
    expect(out).toMatch(/requests\/s +[\d,]+\n +p50 latency +[\d.]+ ms\n +p99 latency +[\d.]+ ms\n +sendbytes 50 MB +[\d,]+ MB\/s/);
    expect(out).toContain('socket file removed');
    const pid = Number(/daemon \(pid (\d+)\)/.exec(out)![1]);
    expect(alive(pid)).toBe(false);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('cleans up when interrupted', async () => {
    const tmp = tempDir('sipc-demo-');
    const demo = startDemo(tmp);
    await waitFor(() => demo.output().includes('simple-ipc send --token=ping'), 20000, 'the demo to talk to its daemon');
    const pid = Number(/daemon \(pid (\d+)\)/.exec(demo.output())![1]);
    expect(fs.readdirSync(tmp).length).toBe(1);
    demo.kill('SIGINT');
    expect(await exited(demo)).toBe('SIGINT');
    await waitFor(() => !alive(pid), 5000, 'the daemon to go');
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
