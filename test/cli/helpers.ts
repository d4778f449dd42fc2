// Shared helpers of the command line tool tests: run `simple-ipc` as its
// own process, stop what a test started.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { onCleanup, repoRoot } from '../helpers.js';

export const CLI = path.join(repoRoot, 'dist', 'cli.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `simple-ipc ...args` in `cwd` and collects its output. */
export function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('latin1'), stderr: Buffer.concat(err).toString() }));
  });
}

export interface BinaryRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `simple-ipc ...args` in `cwd` with `input` on its stdin; stdout as bytes. */
export function cliBytes(args: string[], cwd: string, input?: Uint8Array): Promise<BinaryRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    if (input !== undefined) child.stdin!.end(input);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

/** Stops a daemon the tool started in `cwd` if a test left one behind. */
export function stopAfterTest(cwd: string, name = 'ipc-test'): void {
  onCleanup(async () => {
    if (fs.existsSync(path.join(cwd, name))) await cli(['stop-daemon', `--name=${name}`, '--max-wait=10'], cwd);
  });
}

