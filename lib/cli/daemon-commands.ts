// The daemon subcommands: run-daemon and start-daemon (stop-daemon is a
// client: ./client-commands.ts). The daemon runs the test application of
// docs/protocol.md (../test-app.js).
import * as nodePath from 'node:path';
import { getSystemErrorMap } from 'node:util';

import type * as Daemon from '../daemon.js';
import { createServer, type IpcServer } from '../server.js';
import { testAppHandler } from '../test-app.js';
import type { Options } from './options.js';
import { error, writeErr } from './output.js';
import { shown } from './state.js';
import { EXIT_OK } from './usage.js';

// Only start-daemon starts a daemon: run-daemon does not load ensureDaemon's
// machinery (../daemon.js, the start lock, child_process).
const ensureDaemon: typeof Daemon.ensureDaemon = (path, options) => (require('../daemon.js') as typeof Daemon).ensureDaemon(path, options);

/** The library's ceiling for server threads (Git's helper has none). */
const MAX_SERVER_THREADS = 1024;

/** The tool's entry point, which start-daemon runs as `run-daemon`. */
const CLI_ENTRY = nodePath.join(__dirname, '..', 'cli.js');

/** strerror()-style text for an error of the library. */
function reason(err: unknown): string {
  const e = err as { errno?: number; code?: string; message?: string };
  if (typeof e.errno === 'number') {
    const entry = getSystemErrorMap().get(e.errno);
    if (entry) return entry[1].charAt(0).toUpperCase() + entry[1].slice(1);
  }
  let message = String(e.message ?? err);
  // Drop the "<code>: " prefix of the library's own errors.
  if (e.code && message.startsWith(`${e.code}: `)) message = message.slice(e.code.length + 2);
  return message;
}

async function startServer(options: Options): Promise<IpcServer> {
  if (options.name === null || options.name === '') throw Object.assign(new Error('No such file or directory'), { code: 'ENOENT' });
  return createServer(options.name, testAppHandler, {
    threads: Math.min(options.threads, MAX_SERVER_THREADS),
    // Git's helper takes requests of any size, however long they take.
    maxRequestBytes: Infinity,
    requestTimeoutMs: 0,
  });
}

export async function runDaemon(options: Options): Promise<number> {
  const path = shown(options.name);
  let server: IpcServer;
  try {
    server = await startServer(options);
  } catch (err) {
    if ((err as { code?: string }).code === 'EADDRINUSE') return error(`socket/pipe already in use: '${path}'`);
    return error(`could not start server on: '${path}': ${reason(err)}`);
  }
  server.on('handlerError', (err) => writeErr(`error: handler failed: ${err instanceof Error ? err.message : String(err)}\n`));

  // Ctrl-C or a kill: stop cleanly (the socket file goes), then die of the
  // signal as expected.
  const onSignal = (signal: NodeJS.Signals) => {
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    void server.close({ timeoutMs: 1000 }).finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  await server.closed;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  return EXIT_OK;
}

/** Git's start-daemon messages for the library's start failures. */
const START_FAILURES: Readonly<Record<string, string>> = {
  ERR_IPC_DAEMON_EXITED: 'daemon terminated',
  ERR_IPC_DAEMON_TIMEOUT: 'daemon not online yet',
};

export async function startDaemon(options: Options): Promise<number> {
  // --no-name can never listen. An empty name cannot be created: the
  // daemon Git's helper would start exits at once.
  if (options.name === null) return error('daemon failed to start');
  if (options.name === '') return error('daemon terminated');
  const args = [
    // Keep Node's own flags, except a debugger's (its port is taken).
    ...process.execArgv.filter((flag) => !/^--inspect/.test(flag)),
    CLI_ENTRY,
    'run-daemon',
    `--name=${options.name}`,
    `--threads=${options.threads}`,
  ];
  try {
    // Git's --max-wait=0 starts the daemon and does not wait for it;
    // ensureDaemon's 0 is no limit, and 1 ms its shortest wait.
    const maxWaitMs = Math.max(1, options.maxWait * 1000);
    await ensureDaemon(options.name, { command: process.execPath, args, maxWaitMs });
    return EXIT_OK;
  } catch (err) {
    return error(START_FAILURES[(err as { code?: string }).code ?? ''] ?? 'daemon failed to start');
  }
}
