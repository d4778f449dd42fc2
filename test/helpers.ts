// Shared test helpers: a fresh temporary directory per test, cleanup of
// everything a test opened, descriptor and thread counts, child processes,
// socket files with nobody (or the wrong kind of socket) behind them.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';

const cleanups: Array<() => unknown | Promise<unknown>> = [];

afterEach(async () => {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    await fn();
  }
});

/** Runs `fn` after the current test, in reverse order of registration. */
export function onCleanup(fn: () => unknown | Promise<unknown>): void {
  cleanups.push(fn);
}

/** A new empty directory, removed after the test. */
export function tempDir(prefix = 'sipc-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A socket path in a fresh temporary directory. */
export function socketPath(name = 'test.ipc'): string {
  return path.join(tempDir(), name);
}

export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

export function threadCount(): number {
  return fs.readdirSync('/proc/self/task').length;
}

/** Polls `fn` until it returns true, or throws after `timeoutMs`. */
export async function waitFor(fn: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const repoRoot = path.resolve(__dirname, '..');
export const posix = process.platform !== 'win32';
export const fixtures = path.join(repoRoot, 'test', 'fixtures');

/** Starts `node <script> ...args` and kills it after the test if still running. */
export function spawnNode(script: string, args: string[] = [], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? repoRoot,
  });
  return track(child);
}

/** Collects what `child` prints (stdout and stderr) and kills it after the test if still running. */
export function track(child: ChildProcess): ChildProcess & { output: () => string } {
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return Object.assign(child, { output: () => out });
}

/** Resolves with the exit code (or signal) of a child process. */
export function exited(child: ChildProcess): Promise<number | NodeJS.Signals> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));
}

/**
 * Waits until `child` prints a line matching `pattern` on stdout. The
 * default only catches a child that hangs: on a loaded machine a Node
 * child can take well over 10 s to start and print.
 */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 60000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got: ${buffer}`)), timeoutMs);
    const onData = (d: Buffer) => {
      buffer += d.toString();
      const line = buffer.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(line);
      }
    };
    child.stdout!.on('data', onData);
  });
}

/** True while `pid` is a process this user may signal (a zombie counts). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A socket file with nobody listening behind it. */
export async function staleSocket(p: string): Promise<void> {
  const stale = net.createServer();
  await new Promise<void>((r) => stale.listen(p, r));
  fs.linkSync(p, `${p}.keep`);
  await new Promise<void>((r) => stale.close(() => r()));
  fs.renameSync(`${p}.keep`, p);
}

/** A bound datagram socket at `p` (a socket file a stream connect rejects with EPROTOTYPE). */
export async function datagramSocket(p: string): Promise<void> {
  const child = spawn('python3', ['-c', `import socket,sys,time\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint('bound', flush=True)\ntime.sleep(60)`, p], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onCleanup(() => child.kill('SIGKILL'));
  await waitForLine(child, /bound/);
}
