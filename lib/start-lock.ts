// The start lock of ensureDaemon: `<path>.start.lock`, beside the socket,
// so that N callers that find a dead path spawn one daemon between them
// (docs/daemon.md#one-start). It is not the server's `<path>.lock`
// (docs/protocol.md#the-lock-file), which a server holds for the few
// system calls of its own start; this one is held by the caller that
// spawns, until the path listens or it gives up.
//
// The same staleness rule as the server's lock: the file holds the
// holder's pid; a lock whose pid no longer exists is stale (its holder was
// killed mid-start) and is taken over; a lock without a pid (caught
// between creation and write) is stale after EMPTY_LOCK_STALE_MS. A live
// holder's lock is never taken. Once the daemon is spawned, its pid
// replaces the caller's: a caller that gives up (its signal, its timeout)
// leaves the lock to the starting daemon, so that the next caller waits
// for that daemon instead of spawning another; it is released when the
// path listens or the daemon exits.
import * as fs from 'node:fs';

import { openOwnFileForReading } from './safe-files.js';

const EMPTY_LOCK_STALE_MS = 5000;
let asideCounter = 0;

export interface StartLock {
  /**
   * Names the spawned daemon as the holder: the lock then stays valid
   * while the daemon starts, even after this caller gave up or exited.
   */
  handOver(pid: number): void;
  release(): void;
}

export function startLockPath(path: string): string {
  return `${path}.start.lock`;
}

/** True when a process with this pid exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Is the lock at `lockPath` (as `judged` by lstat) left by a holder that is gone? */
function isStale(lockPath: string, judged: fs.Stats): boolean {
  let content: string;
  try {
    // Never through a symlink, never waiting on a FIFO, never another
    // user's file (docs/security.md#files-beside-the-socket).
    const fd = openOwnFileForReading(lockPath);
    try {
      content = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false; // gone meanwhile (the next attempt takes it), or not ours
  }
  const pid = /^(\d+)\n/.exec(content)?.[1];
  if (pid !== undefined) return !processAlive(Number(pid));
  return Date.now() - judged.mtimeMs >= EMPTY_LOCK_STALE_MS;
}

/**
 * Moves a stale lock aside with one rename, checked against the file that
 * was judged (put back if another caller replaced it in between), as the
 * server does with its own lock.
 */
function takeOverIfStale(lockPath: string): void {
  let judged: fs.Stats;
  try {
    judged = fs.lstatSync(lockPath);
  } catch {
    return;
  }
  if (!isStale(lockPath, judged)) return;
  const aside = `${lockPath}.stale.${process.pid}.${asideCounter++}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch {
    return; // someone else moved it
  }
  try {
    const moved = fs.lstatSync(aside);
    if (moved.ino !== judged.ino || moved.dev !== judged.dev) {
      // A newer lock of a live starter: put it back (unless the path was
      // taken again meanwhile, in which case that starter's release
      // removes the newcomer's lock: the one way this can be wrong).
      try {
        fs.linkSync(aside, lockPath);
      } catch {
        return;
      }
    }
    fs.unlinkSync(aside);
  } catch {
    // Nothing more to do: the next attempt sees what is there.
  }
}

function isOwnRegularFile(lockPath: string): boolean {
  try {
    const st = fs.lstatSync(lockPath);
    const euid = process.geteuid?.();
    return st.isFile() && (euid === undefined || st.uid === euid);
  } catch {
    return true; // gone meanwhile: the next attempt takes it
  }
}

/**
 * Takes the start lock if it is free (or stale). Returns the lock, 'held'
 * while a live caller holds it, or null when no lock can be made there at
 * all (no such directory, no write permission, a file system without
 * O_EXCL, something not ours at the lock's name): the caller then starts without one, and the server's own start
 * sequence still lets only one daemon listen.
 */
export function tryStartLock(path: string): StartLock | 'held' | null {
  const lockPath = startLockPath(path);
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(lockPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return null;
      // Not a regular file of ours (a FIFO, a link, another user's lock):
      // left alone, and no lock is made (docs/security.md#files-beside-the-socket).
      if (!isOwnRegularFile(lockPath)) return null;
      if (attempt === 0) takeOverIfStale(lockPath);
      continue;
    }
    try {
      fs.writeSync(fd, `${process.pid}\n`);
    } catch {
      // An empty lock still locks; it only becomes stale later.
    }
    return lockHeldBy(lockPath, fd);
  }
  return 'held';
}

function lockHeldBy(lockPath: string, fd: number): StartLock {
  const ours = fs.fstatSync(fd);
  let open = true;
  return {
    handOver(pid) {
      if (!open) return;
      try {
        fs.ftruncateSync(fd, 0);
        fs.writeSync(fd, `${pid}\n`, 0);
      } catch {
        // The caller's pid stays: the lock goes stale when it exits.
      }
    },
    release() {
      if (!open) return;
      open = false;
      // Remove it only while it is still ours (a caller that judged us
      // dead wrongly, e.g. a recycled pid, may have replaced it).
      try {
        const now = fs.lstatSync(lockPath);
        if (now.ino === ours.ino && now.dev === ours.dev) fs.unlinkSync(lockPath);
      } catch {
        // Already gone.
      }
      fs.closeSync(fd);
    },
  };
}
