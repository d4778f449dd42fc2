// Another local user as the attacker (docs/security.md#threat-model): a
// real second user, uid 65534, reached with setpriv. Tests that need it
// are skipped, visibly, where this process cannot switch users (not root,
// or no setpriv).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { onCleanup, track, waitForLine } from '../helpers';

export const OTHER_UID = 65534;
/** setpriv's arguments that make the rest of its command line run as uid 65534, with no groups. */
const AS_OTHER = [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups'];

function probeSwitch(): string | null {
  if (process.platform === 'win32') return 'POSIX only';
  if (process.getuid?.() !== 0) return 'not root: cannot switch to uid 65534';
  const r = spawnSync('setpriv', [...AS_OTHER, process.execPath, '-e', 'process.stdout.write(String(process.getuid()))'], {
    encoding: 'utf8',
  });
  if (r.status !== 0 || r.stdout !== '65534') return `setpriv cannot run node as uid 65534 (${r.error?.message ?? r.stderr})`;
  return null;
}

/** Why the other-user tests cannot run here, or null when they can. */
export const cannotSwitchUser = probeSwitch();
if (cannotSwitchUser !== null) console.warn(`test/security: tests with another user SKIPPED: ${cannotSwitchUser}`);

// The other user's environment: ours, less the variables that point the
// addon loader at an installed package (step 60 runs the suite that way,
// from a 0700 directory of root's that uid 65534 cannot enter); its
// scripts load the repository's own build instead.
function otherEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.SIMPLE_IPC_PREBUILD;
  delete env.PREBUILDS_ONLY;
  return env;
}

/** Runs `node -e script ...args` as uid 65534 (no groups); killed after the test. */
export function runAsOther(script: string, args: string[] = []): ChildProcess & { output: () => string } {
  return track(spawn('setpriv', [...AS_OTHER, process.execPath, '-e', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
    env: otherEnv(),
  }));
}

/** Runs a short script as uid 65534 and waits for it (throws on failure). */
export function doAsOther(script: string, args: string[] = []): string {
  const r = spawnSync('setpriv', [...AS_OTHER, process.execPath, '-e', script, ...args], {
    encoding: 'utf8',
    cwd: '/',
    env: otherEnv(),
  });
  if (r.status !== 0) throw new Error(`as uid 65534: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The last JSON line a child printed. */
export function lastJson<T>(output: string): T {
  const lines = output.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Waits for a child's `ready` line. */
export function ready(child: ChildProcess): Promise<string> {
  return waitForLine(child, /^ready/);
}

/**
 * A fresh directory tree for one test: `root` (ours, 0755, so that the
 * other user can reach inside), `shared` (world-writable and sticky, like
 * /tmp) and `theirs` (owned by the other user, e.g. their home directory or
 * repository), all removed after the test.
 */
export function territory(): { root: string; shared: string; theirs: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-sec-'));
  fs.chmodSync(root, 0o755);
  const shared = path.join(root, 'shared');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o1777);
  const theirs = path.join(root, 'theirs');
  fs.mkdirSync(theirs);
  fs.chownSync(theirs, OTHER_UID, OTHER_UID);
  fs.chmodSync(theirs, 0o755);
  onCleanup(() => fs.rmSync(root, { recursive: true, force: true }));
  return { root, shared, theirs };
}

/**
 * A slow way into `dir` (a directory of the other user): a chain of 39
 * symbolic links, each a long walk of `r/../`, ending in `dir/r`. Every
 * lookup of a path through it takes milliseconds, which is the time the
 * other user has to swap a name between two of our system calls. Returns
 * the slow path of the directory and its real path.
 */
export function slowMaze(dir: string): { slow: string; real: string } {
  const script = `
    const fs = require('node:fs'), path = require('node:path');
    const dir = process.argv[1];
    fs.mkdirSync(path.join(dir, 'r'));
    fs.symlinkSync('r', path.join(dir, 'l0'));
    const walk = 'r/../'.repeat(800);
    for (let i = 1; i < 39; i++) fs.symlinkSync(walk + 'l' + (i - 1), path.join(dir, 'l' + i));
  `;
  doAsOther(script, [dir]);
  return { slow: path.join(dir, 'l38'), real: path.join(dir, 'r') };
}
