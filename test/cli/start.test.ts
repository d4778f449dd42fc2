// A start of the command line tool loads what its subcommand needs and
// nothing else: a client subcommand does not load the autoStart machinery
// (auto-start, daemon, start-lock) nor the server, run-daemon does not load
// ensureDaemon's, and output to a pipe does not make process.stdout (Node's
// net module and streams). Each run is a real process with a preload that
// records the modules it loaded.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { fixtures, repoRoot, tempDir, waitFor } from '../helpers.js';
import { serve } from '../servers.js';
import { cli, type Run } from './helpers.js';

const RECORDER = path.join(fixtures, 'loaded-modules.cjs');
const DIST = path.join(repoRoot, 'dist');

/** What only starting a daemon needs. */
const START_MACHINERY = ['auto-start.js', 'daemon.js', 'start-lock.js'];
const SERVER = ['server.js', 'replace.js', 'signals.js', 'test-app.js', 'index.js'];

let runs = 0;

/**
 * Runs `simple-ipc ...args` in `dir` (stdout and stderr: pipes); its result,
 * the package's modules it loaded (paths under dist/) and Node's.
 */
async function cliLoading(args: string[], dir: string): Promise<Run & { loaded: string[]; builtins: string[] }> {
  const record = path.join(dir, `loaded-${++runs}.json`);
  const run = await cli(args, dir, { NODE_OPTIONS: `--require ${RECORDER}`, LOADED_MODULES_FILE: record });
  const { files, builtins } = JSON.parse(fs.readFileSync(record, 'utf8')) as { files: string[]; builtins: string[] };
  const loaded = files.filter((f) => f.startsWith(DIST + path.sep)).map((f) => path.relative(DIST, f).split(path.sep).join('/'));
  return { ...run, loaded, builtins };
}

describe('simple-ipc: what a start loads', () => {
  it('a client subcommand loads the client and the addon, not the autoStart machinery nor the server', async () => {
    const dir = tempDir('sipc-cli-start-');
    const socket = path.join(dir, 'ipc-test');
    await serve(socket);
    const commands = [
      ['is-active'],
      ['send', '--token=ping'],
      ['sendbytes', '--bytecount=10'],
      ['multiple', '--threads=2', '--batchsize=2', '--bytecount=10'],
      ['multiple', '--threads=1', '--batchsize=2', '--bytecount=10'],
      ['call', socket, 'ping'],
      ['state', socket],
    ];
    for (const args of commands) {
      const r = await cliLoading(args, dir);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      // The recorder sees the library's modules (the check below cannot pass by seeing nothing).
      expect(r.loaded).toEqual(expect.arrayContaining(['client.js', 'native.js']));
      expect({ args, loaded: r.loaded.filter((m) => START_MACHINERY.includes(m) || SERVER.includes(m)) }).toEqual({ args, loaded: [] });
      // Written with write(2), not through process.stdout (call streams through it: it waits for a slow reader).
      if (args[0] !== 'call') expect({ args, net: r.builtins.includes('net') }).toEqual({ args, net: false });
    }
    // The recorder sees Node's modules.
    expect((await cliLoading(['call', socket, 'ping'], dir)).builtins).toContain('net');
  });

  it('stop-daemon is a client; run-daemon loads the server, not what starting a daemon needs; start-daemon does', async () => {
    const dir = tempDir('sipc-cli-start-');
    const socket = path.join(dir, 'ipc-test');

    const daemon = cliLoading(['run-daemon'], dir);
    await waitFor(async () => (await cli(['is-active'], dir)).code === 0, 60000, 'run-daemon listening');
    const stop = await cliLoading(['stop-daemon'], dir);
    expect(stop.code).toBe(0);
    expect(stop.loaded).toContain('client.js');
    expect(stop.loaded.filter((m) => START_MACHINERY.includes(m) || SERVER.includes(m))).toEqual([]);
    const run = await daemon;
    expect(run.code).toBe(0);
    expect(run.loaded).toEqual(expect.arrayContaining(['server.js', 'test-app.js']));
    // (The server's version file takes start-lock.js's pid check.)
    expect(run.loaded.filter((m) => m === 'auto-start.js' || m === 'daemon.js')).toEqual([]);

    // The recorder sees these modules when they are loaded.
    const start = await cliLoading(['start-daemon'], dir);
    try {
      expect(start.code).toBe(0);
      expect(start.loaded).toEqual(expect.arrayContaining(['daemon.js', 'start-lock.js']));
    } finally {
      if (fs.existsSync(socket)) await cli(['stop-daemon', '--max-wait=10'], dir);
    }
  });

  it('--version loads neither the client nor the addon, nor process.stdout', async () => {
    const r = await cliLoading(['--version'], tempDir('sipc-cli-start-'));
    expect(r.code).toBe(0);
    expect(r.loaded).toContain('cli.js');
    expect(r.loaded.filter((m) => !m.startsWith('cli'))).toEqual([]);
    expect(r.builtins).not.toContain('net');
  });
});
