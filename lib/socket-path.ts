// defaultSocketPath(name): a per-user private place for a daemon's socket
// (docs/daemon.md#where-the-socket-lives), so that no daemon author has to
// invent one, and none puts it straight into a shared directory such as
// /tmp, where another user could take the name first.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';

import { argError, codeError, type IpcError } from './errors.js';

/** `ERR_IPC_UNSAFE_DIRECTORY`: the per-user directory exists but is not private to this user. */
function unsafeDirectory(dir: string, why: string): IpcError {
  const error = codeError('ERR_IPC_UNSAFE_DIRECTORY', `'${dir}' ${why}; it is not a private place for a socket (left as it is)`);
  error.address = dir;
  return error;
}

/** Why `st` (not followed) is not a directory private to user `uid`, or null. */
function notPrivate(st: fs.Stats, uid: number): string | null {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== uid) return `belongs to uid ${st.uid}`;
  if ((st.mode & 0o077) !== 0) return `has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (group or others have access)`;
  return null;
}

/** $XDG_RUNTIME_DIR when it is set, absolute, and a directory private to us (as the spec requires); else null. */
function runtimeDir(uid: number): string | null {
  const dir = process.env.XDG_RUNTIME_DIR;
  if (dir === undefined || dir === '' || !nodePath.isAbsolute(dir)) return null;
  try {
    return notPrivate(fs.lstatSync(dir), uid) === null ? dir : null;
  } catch {
    return null;
  }
}

/** `<tmpdir>/simple-ipc-<uid>`, created 0700 if missing; refused unless it is a directory private to us. */
function privateTempDir(uid: number): string {
  const dir = nodePath.join(os.tmpdir(), `simple-ipc-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // lstat: a link planted by another user under that name is refused, not followed.
  const why = notPrivate(fs.lstatSync(dir), uid);
  if (why !== null) throw unsafeDirectory(dir, why);
  return dir;
}

/**
 * A socket path for the daemon `name` in a place private to the current
 * user: `$XDG_RUNTIME_DIR/<name>.ipc` when that is a private directory of
 * ours, else `<os.tmpdir()>/simple-ipc-<uid>/<name>.ipc` (the directory
 * is created with mode 0700, and refused with `ERR_IPC_UNSAFE_DIRECTORY`
 * unless it is a directory of ours that only we can enter). On Windows,
 * `<os.tmpdir()>\<name>.ipc`: the user's own temporary directory, so the
 * pipe name derived from it is the user's.
 */
export function defaultSocketPath(name: string): string {
  if (typeof name !== 'string') throw argError('name', 'of type string', name);
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw argError('name', "a file name (not empty, no '/', '\\' or NUL, not '.' or '..')", name, 'ERR_INVALID_ARG_VALUE');
  }
  const file = `${name}.ipc`;
  if (process.platform === 'win32') return nodePath.join(os.tmpdir(), file);
  const uid = process.geteuid!();
  return nodePath.join(runtimeDir(uid) ?? privateTempDir(uid), file);
}
