// The version a daemon announces (the `version` server option), and how a
// client or a new daemon reads it (docs/daemon.md#versions). Nothing goes
// over the wire, where a Git client or daemon would see it: the server
// writes `<path>.version` beside its socket once it listens, naming the
// socket it describes (inode and device; on Windows its pid), and removes
// it when it stops. A file that does not name the socket now at the path
// (left by a daemon killed with SIGKILL, or not yet rewritten by a daemon
// that just took the path over) says nothing: the version is unknown.
import * as fs from 'node:fs';

import { openOwnFileForReading } from './safe-files.js';
import { processAlive } from './start-lock.js';

interface VersionRecord {
  version: string;
  pid: number;
  /** Which server of the process wrote it (two may follow each other at one path). */
  server: number;
  ino: number;
  dev: number;
}

const MAX_VERSION_FILE_BYTES = 4096;
let tempCounter = 0;
let nextServer = 1;

export function versionFilePath(path: string): string {
  return `${path}.version`;
}

/** The socket's identity: inode and device (0, 0 on Windows, where a pipe has no file). */
function socketIdentity(path: string): { ino: number; dev: number } | null {
  if (process.platform === 'win32') return { ino: 0, dev: 0 };
  try {
    const st = fs.lstatSync(path);
    return st.isSocket() ? { ino: st.ino, dev: st.dev } : null;
  } catch {
    return null;
  }
}

/**
 * Writes `<path>.version` for the server listening at `path` now
 * (atomically: a temporary file renamed over it). Returns what
 * removeVersionFile needs to remove only this one.
 */
export function writeVersionFile(path: string, version: string): number {
  const server = nextServer++;
  const identity = socketIdentity(path);
  if (identity === null) return server;
  const record: VersionRecord = { version, pid: process.pid, server, ...identity };
  const target = versionFilePath(path);
  const temporary = `${target}.${process.pid}.${tempCounter++}`;
  try {
    fs.writeFileSync(temporary, JSON.stringify(record), { mode: 0o600, flag: 'wx' });
    fs.renameSync(temporary, target);
  } catch {
    // A version nobody can read is an unknown version: clients replace
    // the daemon, which is what an unknown version calls for anyway.
    fs.rmSync(temporary, { force: true });
  }
  return server;
}

/** Removes `<path>.version` if it is still this server's (a replacement may have written its own). */
export function removeVersionFile(path: string, server: number): void {
  const target = versionFilePath(path);
  const record = readRecord(target);
  if (record !== null && record.pid === process.pid && record.server === server) fs.rmSync(target, { force: true });
}

function readRecord(file: string): VersionRecord | null {
  let fd: number;
  try {
    fd = openOwnFileForReading(file);
  } catch {
    return null;
  }
  try {
    const buffer = Buffer.alloc(MAX_VERSION_FILE_BYTES);
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    const record = JSON.parse(buffer.subarray(0, length).toString('utf8')) as Partial<VersionRecord>;
    const numbers = [record.pid, record.server, record.ino, record.dev];
    if (typeof record.version !== 'string' || !numbers.every((n) => typeof n === 'number')) {
      return null;
    }
    return record as VersionRecord;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The version the server at `path` announced, or null when unknown (no
 * file, or one that does not describe the socket at the path now).
 */
export function runningVersion(path: string): string | null {
  const record = readRecord(versionFilePath(path));
  if (record === null) return null;
  if (process.platform === 'win32') return processAlive(record.pid) ? record.version : null;
  const identity = socketIdentity(path);
  if (identity === null || identity.ino !== record.ino || identity.dev !== record.dev) return null;
  return record.version;
}
