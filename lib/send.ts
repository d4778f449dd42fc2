#!/usr/bin/env node
// `simple-ipc-send`: runs the native client (native/cli, docs/cli.md#native-client)
// when one is built for this machine, and `simple-ipc call` (the same
// arguments, output and exit codes) when none is.
//
// This launcher starts Node itself, so it costs what any Node command costs
// (tens of milliseconds): it is for convenience and for platforms without
// the native program. Callers that run it often call the native program
// directly: `simple-ipc-send --which` prints its path.
//
//   simple-ipc-send <path> (<request> | - | --file=<file>) [--timeout=<s>]
//   simple-ipc-send --which
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const PROGRAM = process.platform === 'win32' ? 'simple-ipc-send.exe' : 'simple-ipc-send';

/**
 * The native client for this machine, or null: the prebuilt one (Linux:
 * static, for any libc; macOS; Windows x64), else one built from source
 * (`node scripts/prebuild/cli.mjs --host --out=build/cli`).
 */
export function nativeClientPath(): string | null {
  const root = path.join(__dirname, '..');
  const candidates = [path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, PROGRAM), path.join(root, 'build', 'cli', PROGRAM)];
  for (const file of candidates) {
    if (!fs.existsSync(file)) continue;
    if (process.platform === 'win32') return file;
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // A package manager that dropped the mode bits: restore them if we may.
      try {
        fs.chmodSync(file, 0o755);
        return file;
      } catch {
        continue;
      }
    }
  }
  return null;
}

function runNative(file: string, args: string[]): void {
  const r = spawnSync(file, args, { stdio: 'inherit', windowsHide: true });
  if (r.error) throw r.error;
  if (r.signal) {
    // Die of the same signal (a closed stdout: SIGPIPE), as a shell would see it.
    process.kill(process.pid, r.signal);
    return;
  }
  process.exitCode = r.status ?? 1;
}

function runJs(args: string[]): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { main } = require('./cli.js') as typeof import('./cli.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const output = require('./cli/output.js') as typeof import('./cli/output.js');
  output.installStdoutHandlers();
  main(['call', ...args]).then(
    (code) => {
      output.flushOut();
      process.exitCode = code;
    },
    (err: unknown) => {
      output.writeErr(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 128;
    },
  );
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const native = nativeClientPath();
  if (args.length === 1 && args[0] === '--which') {
    if (native !== null) process.stdout.write(`${native}\n`);
    else process.stderr.write(`simple-ipc-send: no native client for ${process.platform}-${process.arch}; this command runs \`simple-ipc call\`\n`);
    process.exitCode = native !== null ? 0 : 1;
  } else if (native !== null) {
    runNative(native, args);
  } else {
    runJs(args);
  }
}
