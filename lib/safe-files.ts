// Files the library opens for its users outside the socket itself (the
// daemon's log file): never through a symbolic link, never waiting on a
// FIFO, and only when they are regular files of this process's user, so
// that another local user cannot make us write, truncate or read
// something else (docs/security.md#files-beside-the-socket).
import * as fs from 'node:fs';

import { codeError, type IpcError } from './errors.js';

const C = fs.constants;
// Not defined on Windows, where neither applies.
const NOFOLLOW = C.O_NOFOLLOW ?? 0;
const NONBLOCK = C.O_NONBLOCK ?? 0;

/** `ERR_IPC_UNSAFE_FILE`: `file` is not a regular file of this user; it was left as it is. */
export function unsafeFileError(file: string, why: string): IpcError {
  const error = codeError('ERR_IPC_UNSAFE_FILE', `'${file}' ${why}; it was left as it is`);
  error.address = file;
  return error;
}

/** Why what is at `file` (not followed) is not ours to open, or null. */
function notOurs(st: fs.Stats): string | null {
  const euid = process.geteuid?.();
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isFile()) return 'is not a regular file';
  if (euid !== undefined && st.uid !== euid) return `belongs to uid ${st.uid}`;
  return null;
}

function openOwnFile(file: string, flags: number, mode?: number): number {
  let fd: number;
  try {
    fd = fs.openSync(file, flags | NOFOLLOW | NONBLOCK, mode);
  } catch (error) {
    // ELOOP (EMLINK on FreeBSD): a symbolic link; ENXIO: a FIFO nobody
    // reads, or a socket; EACCES: also what Linux's protected_* rules
    // answer for another user's file in a sticky directory.
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(file);
    } catch {
      throw error;
    }
    const why = notOurs(st);
    if (why !== null) throw unsafeFileError(file, why);
    throw error;
  }
  const why = notOurs(fs.fstatSync(fd));
  if (why !== null) {
    fs.closeSync(fd);
    throw unsafeFileError(file, why);
  }
  return fd;
}

/** Opens (or creates, mode 0600) a file of ours to append to; throws ERR_IPC_UNSAFE_FILE for anything else. */
export function openOwnFileForAppend(file: string): number {
  return openOwnFile(file, C.O_WRONLY | C.O_APPEND | C.O_CREAT, 0o600);
}

/** Opens a file of ours for reading; throws ERR_IPC_UNSAFE_FILE for anything else. */
export function openOwnFileForReading(file: string): number {
  return openOwnFile(file, C.O_RDONLY);
}
