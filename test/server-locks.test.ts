// The lock file `<path>.lock` (docs/protocol.md#the-lock-file): one left by
// a killed process no longer blocks the path forever, and a lock that a
// live process holds is never taken.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { createServer } from '../dist/index.js';
import { onCleanup, socketPath } from './helpers';

const posix = process.platform !== 'win32';

// The pid of a process that has exited (and been reaped).
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

function writeLock(p: string, content: string, ageSeconds = 0): string {
  const lock = `${p}.lock`;
  fs.writeFileSync(lock, content);
  if (ageSeconds > 0) {
    const then = new Date(Date.now() - ageSeconds * 1000);
    fs.utimesSync(lock, then, then);
  }
  return lock;
}

async function start(p: string) {
  const server = await createServer(p, () => 'pong');
  onCleanup(() => server.close());
  return server;
}

describe.runIf(posix)('a left-over lock file', () => {
  it('naming a dead process (ours, killed while starting) is taken over', async () => {
    const p = socketPath();
    const lock = writeLock(p, `${deadPid()}\n`);
    await start(p);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it("without a pid (Git's) is taken over once it is older than a few seconds", async () => {
    const p = socketPath();
    writeLock(p, '', 10);
    await start(p);
  });

  it('without a pid but fresh (someone is starting right now) is respected: EEXIST', async () => {
    const p = socketPath();
    const lock = writeLock(p, '');
    await expect(createServer(p, () => 'pong')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.existsSync(lock)).toBe(true);
  });

  it('naming a live process is never taken, however old', async () => {
    const p = socketPath();
    const lock = writeLock(p, `${process.pid}\n`, 60);
    await expect(createServer(p, () => 'pong')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
  });
});
