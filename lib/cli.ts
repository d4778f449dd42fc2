#!/usr/bin/env node
// `simple-ipc`: the command line tool. Same subcommands, options, output
// and exit codes as Git's simple-ipc test helper (`test-tool simple-ipc`),
// so that our daemon and Git's clients, or Git's daemon and our clients,
// can be mixed freely. It is also the tool to poke any simple-ipc daemon.
//
// Everything here goes through the library's public API (./index.js);
// the daemon runs the test application of SPEC section 6 (./test-app.js).
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { getSystemErrorMap } from 'node:util';

import { createServer, getActiveState, getActiveStateSync, sendCommand, type ActiveState, type ClientOptions } from './index.js';
import { testAppHandler } from './test-app.js';

const PROGRAM = 'simple-ipc';

/** Exit codes, as Git's helper uses them. */
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_FATAL = 128; // Git's die(): unknown subcommand
const EXIT_USAGE = 129; // Git's usage errors: bad options, -h

/** Git's helper connects with wait-if-busy and without wait-if-not-found. */
const CLIENT_OPTIONS: ClientOptions = { waitIfBusy: true, waitIfNotFound: false };

/** The library's ceiling for server threads (Git's helper has none). */
const MAX_SERVER_THREADS = 1024;

// ---------------------------------------------------------------------------
// Usage and help

const USAGE = `usage: ${PROGRAM} is-active    [--name=<path>]
   or: ${PROGRAM} run-daemon   [--name=<path>] [--threads=<n>]
   or: ${PROGRAM} start-daemon [--name=<path>] [--threads=<n>] [--max-wait=<seconds>]
   or: ${PROGRAM} stop-daemon  [--name=<path>] [--max-wait=<seconds>]
   or: ${PROGRAM} send         [--name=<path>] [--token=<token>]
   or: ${PROGRAM} sendbytes    [--name=<path>] [--bytecount=<n>] [--byte=<byte>]
   or: ${PROGRAM} multiple     [--name=<path>] [--threads=<n>] [--bytecount=<n>] [--batchsize=<n>]

    --name <name>         name or pathname of unix domain socket (default: ipc-test)
    --threads <n>         number of threads in server thread pool, or of client senders (default: 5)
    --max-wait <n>        seconds to wait for daemon to start or stop (default: 60)
    --bytecount <n>       number of bytes (default: 1024)
    --batchsize <n>       number of requests per thread (default: 10)
    --byte <byte>         ballast character (default: x)
    --token <token>       command token to send to the server (default: (no-command))

`;

const HELP = `${PROGRAM}: talk to, or run, a simple-ipc daemon (Git's simple-ipc protocol).
Interchangeable with Git's test helper \`test-tool simple-ipc\`.

${USAGE}Subcommands:
  is-active     Exit 0 silently if a server listens at <path>; otherwise print
                an error and exit 1.
  run-daemon    Run the test application daemon in the foreground until a
                client sends \`quit\` (or SIGINT/SIGTERM).
  start-daemon  Start \`run-daemon\` in the background and wait up to
                --max-wait seconds until it listens.
  stop-daemon   Send \`quit\`, then wait (checking every 100 ms) up to
                --max-wait seconds until <path> no longer listens.
  send          Send <token>; print the response and a newline (nothing if the
                response is empty).
  sendbytes     Send "sendbytes " + <bytecount> copies of <byte>; print
                "sent:<byte><bytecount, 8 digits> <response, trailing whitespace
                trimmed>".
  multiple      Run <threads> concurrent senders; sender k sends <batchsize>
                sendbytes requests with byte 'A'+k%26 and
                <bytecount> + <batchsize>*floor(k/26) + i bytes (i = 0, 1, ...),
                printing one sendbytes line per request as it completes, then
                "client (good N) (join 0), (errors M)".

The test application (the daemon's requests and responses):
  quit                 no response; the daemon shuts down
  ping                 pong
  big                  10000 rows "big: <row, 75 digits>\\n", in one chunk
  chunk                the same 10000 rows, one chunk per row
  slow                 1000 such rows, one chunk per row, 10 ms apart
  sendbytes <ballast>  rcvd:<byte><length, 8 digits>\\n, or errs:<count>\\n
  anything else        unhandled command: <request>

Every client subcommand first checks, as is-active does, that <path> listens.
Numeric options below 1 are raised to 1 (--max-wait to 0); --byte takes the
first byte of its value. Options may be abbreviated (--tok=ping).

Errors go to stderr, one line each, prefixed "error: ":
  no server listening at '<path>'           is-active and every client subcommand:
  path not found '<path>'                   the path's active state is not
  invalid pipe/socket name '<path>'         "listening"
  other error for '<path>'
  socket/pipe already in use: '<path>'      run-daemon: a live server owns the path
  could not start server on: '<path>': <reason>
  daemon failed to start                    start-daemon: the path cannot listen
  daemon not online yet                     start-daemon: --max-wait ran out
  daemon terminated                         start-daemon: the daemon exited
  daemon has not shutdown yet               stop-daemon: --max-wait ran out
  failed to send '<token>' to '<path>'      send, stop-daemon
  client failed to sendbytes(<n>, '<byte>') to '<path>'   sendbytes, multiple

Exit codes: 0 success; 1 failure; 128 unknown subcommand; 129 bad option or -h.
`;

// ---------------------------------------------------------------------------
// Output helpers

function writeOut(data: string | Uint8Array): void {
  process.stdout.write(data);
}

function writeErr(line: string): void {
  process.stderr.write(line);
}

/** Git's error(): one line on stderr; returns the failure exit code. */
function error(message: string): number {
  writeErr(`error: ${message}\n`);
  return EXIT_FAILED;
}

// ---------------------------------------------------------------------------
// Option parsing, with the rules of Git's parse-options: --opt=value or
// --opt value, unique abbreviations (--tok), --no-<opt> to reset, `--` ends
// the options, other arguments are ignored.

interface Options {
  name: string | null;
  threads: number;
  maxWait: number;
  bytecount: number;
  batchsize: number;
  byte: string | null;
  token: string | null;
}

type OptionKey = keyof Options;

const OPTION_TABLE: ReadonlyArray<{ long: string; key: OptionKey; kind: 'string' | 'integer' }> = [
  { long: 'name', key: 'name', kind: 'string' },
  { long: 'threads', key: 'threads', kind: 'integer' },
  { long: 'max-wait', key: 'maxWait', kind: 'integer' },
  { long: 'bytecount', key: 'bytecount', kind: 'integer' },
  { long: 'batchsize', key: 'batchsize', kind: 'integer' },
  { long: 'byte', key: 'byte', kind: 'string' },
  { long: 'token', key: 'token', kind: 'string' },
];

class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: 'none' | 'stdout' | 'stderr',
  ) {
    super(message);
  }
}

class HelpRequest extends Error {}

/**
 * An integer the way C's strtol(s, &end, 10) reads it, the whole string
 * consumed, then stored in a 32-bit int. Null if it is not a number.
 */
function parseCInteger(text: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)$/.exec(text);
  if (m === null) return null;
  let value = BigInt(m[1]!);
  const LONG_MAX = (1n << 63n) - 1n;
  const LONG_MIN = -(1n << 63n);
  if (value > LONG_MAX) value = LONG_MAX;
  if (value < LONG_MIN) value = LONG_MIN;
  return Number(BigInt.asIntN(32, value));
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    name: 'ipc-test',
    threads: 5,
    maxWait: 60,
    bytecount: 1024,
    batchsize: 10,
    byte: null,
    token: null,
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg.startsWith('--')) {
      const body = arg.slice(2);
      if (body === 'help') throw new HelpRequest();
      const equals = body.indexOf('=');
      const key = equals < 0 ? body : body.slice(0, equals);
      const inlineValue = equals < 0 ? undefined : body.slice(equals + 1);

      type Match = { entry: (typeof OPTION_TABLE)[number]; negated: boolean; value: string | undefined };
      let exact: Match | null = null;
      let abbreviation: Match | null = null;
      let ambiguous: Match | null = null;
      const candidate = (m: Match) => {
        if (abbreviation !== null) ambiguous = abbreviation;
        abbreviation = m;
      };
      for (const entry of OPTION_TABLE) {
        if (key === entry.long) {
          exact = { entry, negated: false, value: inlineValue };
          break;
        }
        if (entry.long.startsWith(key)) {
          candidate({ entry, negated: false, value: inlineValue });
          continue;
        }
        if ('no-'.startsWith(body)) {
          candidate({ entry, negated: true, value: undefined });
          continue;
        }
        if (!body.startsWith('no-')) continue;
        const rest = key.slice(3);
        if (rest === entry.long) {
          exact = { entry, negated: true, value: inlineValue };
          break;
        }
        if (entry.long.startsWith(body.slice(3))) candidate({ entry, negated: true, value: undefined });
      }
      let match: Match | null = exact;
      if (match === null) {
        if (ambiguous !== null) {
          const a = ambiguous as Match;
          const b = abbreviation as unknown as Match;
          throw new UsageError(
            `ambiguous option: ${body} (could be --${a.negated ? 'no-' : ''}${a.entry.long} or --${b.negated ? 'no-' : ''}${b.entry.long})`,
            'stdout',
          );
        }
        match = abbreviation;
      }
      if (match === null) throw new UsageError(`unknown option \`${body}'`, 'stderr');

      const { entry, negated } = match;
      const optionName = `option \`${negated ? 'no-' : ''}${entry.long}'`;
      if (negated) {
        if (match.value !== undefined) throw new UsageError(`${optionName} takes no value`, 'none');
        if (entry.kind === 'integer') (options[entry.key] as number) = 0;
        else (options[entry.key] as string | null) = null;
        continue;
      }
      let value = match.value;
      if (value === undefined) {
        if (i + 1 >= args.length) throw new UsageError(`${optionName} requires a value`, 'none');
        value = args[++i]!;
      }
      if (entry.kind === 'integer') {
        const n = parseCInteger(value);
        if (n === null) throw new UsageError(`${optionName} expects a numerical value`, 'none');
        (options[entry.key] as number) = n;
      } else {
        (options[entry.key] as string | null) = value;
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      if (arg[1] === 'h') throw new HelpRequest();
      throw new UsageError(`unknown switch \`${arg[1]}'`, 'stderr');
    }
    // Anything else (Git's usage shows [<name>] and the like) is ignored,
    // as Git's helper ignores it.
  }

  if (options.threads < 1) options.threads = 1;
  if (options.maxWait < 0) options.maxWait = 0;
  if (options.bytecount < 1) options.bytecount = 1;
  if (options.batchsize < 1) options.batchsize = 1;
  return options;
}

// ---------------------------------------------------------------------------
// The active state of a path, and the is-active probe

/** How a path is shown in messages (Git prints a missing name as "(null)"). */
function shown(name: string | null): string {
  return name ?? '(null)';
}

// The library refuses an empty path. Git on POSIX lstat()s it (ENOENT:
// not-listening); Git on Windows cannot make a pipe name of it, its
// realpath fails (invalid-path). --no-name has no path at all (invalid).
const EMPTY_NAME_STATE: ActiveState = process.platform === 'win32' ? 'invalid-path' : 'not-listening';

async function activeState(name: string | null): Promise<ActiveState> {
  if (name === null) return 'invalid-path';
  if (name === '') return EMPTY_NAME_STATE;
  return getActiveState(name);
}

function activeStateSync(name: string | null): ActiveState {
  if (name === null) return 'invalid-path';
  if (name === '') return EMPTY_NAME_STATE;
  return getActiveStateSync(name);
}

/** The message for a path that is not listening, as `is-active` prints it. */
export function stateMessage(state: ActiveState, name: string | null): string | null {
  const path = shown(name);
  switch (state) {
    case 'listening':
      return null;
    case 'not-listening':
      return `no server listening at '${path}'`;
    case 'path-not-found':
      return `path not found '${path}'`;
    case 'invalid-path':
      return `invalid pipe/socket name '${path}'`;
    default:
      return `other error for '${path}'`;
  }
}

function probe(options: Options): number {
  const message = stateMessage(activeStateSync(options.name), options.name);
  return message === null ? EXIT_OK : error(message);
}

// ---------------------------------------------------------------------------
// Daemon subcommands

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

async function runDaemon(options: Options): Promise<number> {
  const path = shown(options.name);
  let server;
  try {
    if (options.name === null || options.name === '') throw Object.assign(new Error('No such file or directory'), { code: 'ENOENT' });
    server = await createServer(options.name, testAppHandler, {
      threads: Math.min(options.threads, MAX_SERVER_THREADS),
      // Git's helper takes requests of any size, however long they take.
      maxRequestBytes: Infinity,
      requestTimeoutMs: 0,
    });
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

async function startDaemon(options: Options): Promise<number> {
  const args = [
    // Keep Node's own flags, except a debugger's (its port is taken).
    ...process.execArgv.filter((flag) => !/^--inspect/.test(flag)),
    __filename,
    'run-daemon',
    options.name === null ? '--no-name' : `--name=${options.name}`,
    `--threads=${options.threads}`,
  ];
  let child;
  try {
    child = spawn(process.execPath, args, { detached: true, stdio: 'ignore', windowsHide: true });
  } catch {
    return error('daemon failed to start');
  }
  let died = false;
  let spawnFailed = false;
  child.once('exit', () => (died = true));
  child.once('error', () => (spawnFailed = true));

  const deadline = Date.now() + options.maxWait * 1000;
  try {
    for (;;) {
      // Let the 'exit' and 'error' events of the child run.
      await sleep(0);
      if (spawnFailed) return error('daemon failed to start');
      if (died) return error('daemon terminated');
      const state = await activeState(options.name);
      if (state === 'listening') return EXIT_OK;
      if (state === 'invalid-path' || state === 'other-error') return error('daemon failed to start');
      // not-listening or path-not-found: give it more time.
      if (Date.now() >= deadline) return error('daemon not online yet');
      await sleep(20);
    }
  } finally {
    // The daemon lives on by itself; do not wait for it.
    child.removeAllListeners();
    child.on('error', () => {});
    child.unref();
  }
}

// ---------------------------------------------------------------------------
// Client subcommands

/**
 * Git's client reports an exchange that failed after it connected (a
 * connect failure is reported by the probe or the caller only).
 */
function reportExchangeError(err: unknown): void {
  const e = err as { state?: string; code?: string; syscall?: string };
  if (e.state !== undefined) return;
  if (e.code === 'EPIPE' || e.syscall === 'write') writeErr('error: could not send IPC command\n');
  else writeErr('error: could not read IPC response\n');
}

/** Sends the token; prints the response and a newline. */
async function send(options: Options, token: string | null): Promise<number> {
  const command = token !== null && token !== '' ? token : '(no-command)';
  let response: Buffer;
  try {
    response = await sendCommand(options.name!, command, CLIENT_OPTIONS);
  } catch (err) {
    reportExchangeError(err);
    return error(`failed to send '${command}' to '${shown(options.name)}'`);
  }
  if (response.length > 0) writeOut(Buffer.concat([response, Buffer.from('\n')]));
  return EXIT_OK;
}

async function stopDaemon(options: Options): Promise<number> {
  const started = Date.now();
  const sent = await send(options, 'quit');
  if (sent !== EXIT_OK) return sent;
  for (;;) {
    await sleep(100);
    if ((await activeState(options.name)) !== 'listening') return EXIT_OK;
    if (Date.now() - started > options.maxWait * 1000) return error('daemon has not shutdown yet');
  }
}

const SENDBYTES = Buffer.from('sendbytes ');
const TRAILING_SPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

function sendbytesRequest(byte: number, count: number): Buffer {
  const request = Buffer.allocUnsafe(SENDBYTES.length + count);
  SENDBYTES.copy(request, 0);
  request.fill(byte, SENDBYTES.length);
  return request;
}

/** `sent:<byte><count %08d> <response without trailing whitespace>\n` */
function sendbytesLine(byte: number, count: number, response: Buffer): Buffer {
  let end = response.length;
  while (end > 0 && TRAILING_SPACE.has(response[end - 1]!)) end--;
  return Buffer.concat([
    Buffer.from('sent:'),
    Buffer.from([byte]),
    Buffer.from(`${String(count).padStart(8, '0')} `),
    response.subarray(0, end),
    Buffer.from('\n'),
  ]);
}

function sendbytesFailure(byte: number, count: number, name: string | null): number {
  return error(`client failed to sendbytes(${count}, '${Buffer.from([byte]).toString('latin1')}') to '${shown(name)}'`);
}

function ballastByte(options: Options): number {
  // The first byte of --byte (Git takes the first char of the C string).
  if (options.byte !== null && options.byte !== '') return Buffer.from(options.byte)[0]!;
  return 'x'.charCodeAt(0);
}

async function sendbytes(options: Options): Promise<number> {
  const byte = ballastByte(options);
  const count = options.bytecount;
  let response: Buffer;
  try {
    response = await sendCommand(options.name!, sendbytesRequest(byte, count), CLIENT_OPTIONS);
  } catch (err) {
    reportExchangeError(err);
    return sendbytesFailure(byte, count, options.name);
  }
  writeOut(sendbytesLine(byte, count, response));
  return EXIT_OK;
}

async function multiple(options: Options): Promise<number> {
  let good = 0;
  let errors = 0;
  const sender = async (k: number) => {
    const byte = 'A'.charCodeAt(0) + (k % 26);
    const base = options.bytecount + options.batchsize * Math.floor(k / 26);
    for (let i = 0; i < options.batchsize; i++) {
      const count = base + i;
      try {
        const response = await sendCommand(options.name!, sendbytesRequest(byte, count), CLIENT_OPTIONS);
        writeOut(sendbytesLine(byte, count, response));
        good++;
      } catch (err) {
        reportExchangeError(err);
        sendbytesFailure(byte, count, options.name);
        errors++;
      }
    }
  };
  const senders: Promise<void>[] = [];
  for (let k = 0; k < options.threads; k++) senders.push(sender(k));
  await Promise.all(senders);
  // "(join N)" counts threads Git's helper could not join: always 0 here.
  writeOut(`client (good ${good}) (join 0), (errors ${errors})\n`);
  return errors > 0 ? EXIT_FAILED : EXIT_OK;
}

// ---------------------------------------------------------------------------
// Dispatch

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
  let options: Options;
  try {
    options = parseOptions(argv.slice(1));
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

  switch (subcommand) {
    case 'is-active':
      return probe(options);
    case 'run-daemon':
      return runDaemon(options);
    case 'start-daemon':
      return startDaemon(options);
  }

  // Client subcommands: make sure a server listens before sending anything.
  const clients: Record<string, () => number | Promise<number>> = {
    'stop-daemon': () => stopDaemon(options),
    send: () => send(options, options.token),
    sendbytes: () => sendbytes(options),
    multiple: () => multiple(options),
  };
  const run = Object.prototype.hasOwnProperty.call(clients, subcommand) ? clients[subcommand] : undefined;
  if (run === undefined) {
    writeErr(`fatal: Unhandled subcommand: '${subcommand}'\n`);
    return EXIT_FATAL;
  }
  if (probe(options) !== EXIT_OK) return EXIT_FAILED;
  return run();
}

if (require.main === module) {
  // A reader that went away (`simple-ipc send --token=big | head`) ends us
  // quietly, as SIGPIPE ends Git's helper.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_FAILED);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      writeErr(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT_FATAL;
    },
  );
}
