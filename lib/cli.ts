#!/usr/bin/env node
// `simple-ipc`: the command line tool, with two faces (docs/cli.md):
// - the daemon author's commands, a `curl` for any simple-ipc daemon:
//   call, state, stop (./cli/call-commands.ts);
// - Git's simple-ipc test helper (`test-tool simple-ipc`): the same
//   subcommands, options, output and exit codes, so that our daemon and
//   Git's clients, or Git's daemon and our clients, can be mixed freely
//   (./cli/daemon-commands.ts, ./cli/client-commands.ts).
//
// This entry only dispatches: options in ./cli/options.ts and
// ./cli/args.ts, texts in ./cli/usage.ts, exit codes in
// ./cli/exit-codes.ts. Everything goes through the library's public API
// (what ./index.js exports, taken from the module that defines it, so that
// a client subcommand does not load the server's modules).
//
// A start loads only what the subcommand needs: the command modules (and
// through them the library and its addon) are required when their
// subcommand runs, so that --version, help and usage errors load none of
// them, and each subcommand only its own.
import * as fs from 'node:fs';
import * as nodePath from 'node:path';

import type * as Args from './cli/args.js';
import type * as CallCommands from './cli/call-commands.js';
import type * as ClientCommands from './cli/client-commands.js';
import type * as DaemonCommands from './cli/daemon-commands.js';
import { HelpRequest, parseOptions, UsageError, type Options } from './cli/options.js';
import { flushOut, installStdoutHandlers, writeErr, writeOut } from './cli/output.js';
import type * as State from './cli/state.js';
import type * as Suggest from './cli/suggest.js';
import { COMMAND_HELP, COMMANDS, EXIT_FAILED, EXIT_FATAL, EXIT_OK, EXIT_USAGE, HELP, PROGRAM, USAGE } from './cli/usage.js';

const callCommands = (): typeof CallCommands => require('./cli/call-commands.js') as typeof CallCommands;
const clientCommands = (): typeof ClientCommands => require('./cli/client-commands.js') as typeof ClientCommands;
const daemonCommands = (): typeof DaemonCommands => require('./cli/daemon-commands.js') as typeof DaemonCommands;
const probe = (options: Options): number => (require('./cli/state.js') as typeof State).probe(options);
// Only the daemon author's commands parse with ./cli/args.js; only a mistyped
// command needs a suggestion.
const isArgsError = (err: unknown): err is Args.ArgsError => err instanceof (require('./cli/args.js') as typeof Args).ArgsError;
const nearest = (word: string, candidates: readonly string[]): string | null => (require('./cli/suggest.js') as typeof Suggest).nearest(word, candidates);

/** Options, or the exit code of a usage error or help request (already reported). */
function parseOrReport(subcommand: string, args: string[]): Options | number {
  try {
    return parseOptions(args);
  } catch (err) {
    if (err instanceof HelpRequest) {
      writeOut(err.long ? COMMAND_HELP[subcommand]! : USAGE);
      return err.long ? EXIT_OK : EXIT_USAGE;
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

/** Git's test-helper client subcommands: each first checks, as is-active does, that a server listens. */
const CLIENT_COMMANDS: Readonly<Record<string, (options: Options) => Promise<number>>> = {
  'stop-daemon': (options) => clientCommands().stopDaemon(options),
  send: (options) => clientCommands().send(options, options.token),
  sendbytes: (options) => clientCommands().sendbytes(options),
  multiple: (options) => clientCommands().multiple(options),
};

/** The daemon author's commands: they parse their own arguments. */
const CALL_COMMANDS: Readonly<Record<string, (args: string[]) => Promise<number>>> = {
  call: (args) => callCommands().call(args),
  state: (args) => callCommands().state(args),
  stop: (args) => callCommands().stop(args),
};

function has<T>(table: Readonly<Record<string, T>>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(table, key);
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(nodePath.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** `help [<command>]`. */
function help(args: string[]): number {
  if (args.length === 0) {
    writeOut(HELP);
    return EXIT_OK;
  }
  const [command, ...extra] = args;
  if (extra.length > 0) return usageError(`unexpected argument '${extra[0]}'`, 'help');
  if (!has(COMMAND_HELP, command!)) {
    writeErr(`error: no such command '${command}'${hint(command!)}\n`);
    return EXIT_USAGE;
  }
  writeOut(COMMAND_HELP[command!]!);
  return EXIT_OK;
}

function hint(word: string): string {
  const guess = nearest(word, COMMANDS);
  return guess === null ? `; see '${PROGRAM} --help'` : `; did you mean '${guess}'?`;
}

function usageError(message: string, command: string): number {
  writeErr(`error: ${message}\n${COMMAND_HELP[command]!.split('\n\n')[0]}\nSee '${PROGRAM} help ${command}'.\n`);
  return EXIT_USAGE;
}

/** Whether `args` ask for help before any `--`. */
function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

async function runCallCommand(command: string, args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    writeOut(COMMAND_HELP[command]!);
    return EXIT_OK;
  }
  try {
    return await CALL_COMMANDS[command]!(args);
  } catch (err) {
    if (isArgsError(err)) return usageError(err.message, command);
    throw err;
  }
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || (argv.length === 1 && argv[0] === '-h')) {
    writeErr(USAGE);
    return EXIT_USAGE;
  }
  const subcommand = argv[0]!;
  const rest = argv.slice(1);
  if (subcommand === '--help' && rest.length === 0) {
    writeOut(HELP);
    return EXIT_OK;
  }
  if (subcommand === '--version' && rest.length === 0) {
    writeOut(`${PROGRAM} ${version()}\n`);
    return EXIT_OK;
  }
  // Git's test suite asks the helper whether simple-ipc works here.
  if (subcommand === 'SUPPORTS_SIMPLE_IPC' && rest.length === 0) return EXIT_OK;
  if (subcommand === 'help') return help(rest);
  if (has(CALL_COMMANDS, subcommand)) return runCallCommand(subcommand, rest);

  const known = subcommand === 'is-active' || subcommand === 'run-daemon' || subcommand === 'start-daemon' || has(CLIENT_COMMANDS, subcommand);
  if (!known) {
    // Git's helper says exactly this (exit 128); the hint is ours.
    writeErr(`fatal: Unhandled subcommand: '${subcommand}'\nhint: ${hint(subcommand).slice(2)}\n`);
    return EXIT_FATAL;
  }
  const options = parseOrReport(subcommand, rest);
  if (typeof options === 'number') return options;

  switch (subcommand) {
    case 'is-active':
      return probe(options);
    case 'run-daemon':
      return daemonCommands().runDaemon(options);
    case 'start-daemon':
      return daemonCommands().startDaemon(options);
  }
  if (probe(options) !== EXIT_OK) return EXIT_FAILED;
  return CLIENT_COMMANDS[subcommand]!(options);
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
