#!/usr/bin/env node
// `simple-ipc`: the command line tool. Same subcommands, options, output
// and exit codes as Git's simple-ipc test helper (`test-tool simple-ipc`),
// so that our daemon and Git's clients, or Git's daemon and our clients,
// can be mixed freely. It is also the tool to poke any simple-ipc daemon.
//
// This entry only dispatches: options in ./cli/options.ts, texts in
// ./cli/usage.ts, subcommands in ./cli/daemon-commands.ts and
// ./cli/client-commands.ts. Everything goes through the library's public
// API (./index.js).
import { multiple, send, sendbytes } from './cli/client-commands.js';
import { runDaemon, startDaemon, stopDaemon } from './cli/daemon-commands.js';
import { HelpRequest, parseOptions, UsageError, type Options } from './cli/options.js';
import { flushOut, installStdoutHandlers, writeErr, writeOut } from './cli/output.js';
import { probe } from './cli/state.js';
import { EXIT_FAILED, EXIT_FATAL, EXIT_OK, EXIT_USAGE, HELP, USAGE } from './cli/usage.js';

export { stateMessage } from './cli/state.js';

/** Options, or the exit code of a usage error (already reported). */
function parseOrReport(args: string[]): Options | number {
  try {
    return parseOptions(args);
  } catch (err) {
    if (err instanceof HelpRequest) {
      writeOut(USAGE);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      writeErr(`error: ${err.message}\n`);
      if (err.usage === 'stderr') writeErr(USAGE);
      else if (err.usage === 'stdout') writeOut(USAGE);
      return EXIT_USAGE;
    }
    throw err;
  }
}

/** Client subcommands: each first checks, as is-active does, that a server listens. */
const CLIENT_COMMANDS: Readonly<Record<string, (options: Options) => Promise<number>>> = {
  'stop-daemon': stopDaemon,
  send: (options) => send(options, options.token),
  sendbytes,
  multiple,
};

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || (argv.length === 1 && argv[0] === '-h')) {
    writeErr(USAGE);
    return EXIT_USAGE;
  }
  if (argv.length === 1 && argv[0] === '--help') {
    writeOut(HELP);
    return EXIT_OK;
  }
  // Git's test suite asks the helper whether simple-ipc works here.
  if (argv.length === 1 && argv[0] === 'SUPPORTS_SIMPLE_IPC') return EXIT_OK;

  const subcommand = argv[0]!;
  const options = parseOrReport(argv.slice(1));
  if (typeof options === 'number') return options;

  switch (subcommand) {
    case 'is-active':
      return probe(options);
    case 'run-daemon':
      return runDaemon(options);
    case 'start-daemon':
      return startDaemon(options);
  }
  const run = Object.prototype.hasOwnProperty.call(CLIENT_COMMANDS, subcommand) ? CLIENT_COMMANDS[subcommand] : undefined;
  if (run === undefined) {
    writeErr(`fatal: Unhandled subcommand: '${subcommand}'\n`);
    return EXIT_FATAL;
  }
  if (probe(options) !== EXIT_OK) return EXIT_FAILED;
  return run(options);
}

if (require.main === module) {
  installStdoutHandlers();
  main(process.argv.slice(2)).then(
    (code) => {
      flushOut();
      process.exitCode = code;
    },
    (err: unknown) => {
      writeErr(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT_FATAL;
    },
  );
}
