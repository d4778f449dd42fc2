// The daemon author's commands, a `curl` for any simple-ipc daemon:
//
//   simple-ipc call  <path> [<request> | -] [--file=<file>] [--timeout=<s>]
//   simple-ipc state <path> [--json]
//   simple-ipc stop  <path> [--request=<text>] [--timeout=<s>]
//
// Requests come from an argument, a file or stdin, as bytes; the response
// goes to stdout as it arrives. Each outcome of an exchange has its own
// exit code (./exit-codes.ts), and every error names the path and says
// what to do (docs/cli.md#call).
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { getActiveState, sendCommand, streamCommand, type ActiveState } from '../client.js';
import { ArgsError, parseArgs, parseSeconds, type OptionSpec } from './args.js';
import { EXIT_FAILED, EXIT_INCOMPLETE, EXIT_NO_DAEMON, EXIT_OK, EXIT_TIMED_OUT } from './exit-codes.js';
import { writeErr, writeOut, writeOutAndWait } from './output.js';

/** How the error of a failed exchange is told to the user, and its exit code. */
interface Verdict {
  code: number;
  message: string;
}

function fail(verdict: Verdict): number {
  writeErr(`error: ${verdict.message}\n`);
  return verdict.code;
}

function noDaemon(path: string): Verdict {
  return { code: EXIT_NO_DAEMON, message: `no daemon is listening at '${path}': start it, or check the path` };
}

function badPath(path: string): Verdict {
  return { code: EXIT_FAILED, message: `'${path}' is not a socket a daemon listens on (or a directory of it is missing): check the path` };
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** The verdict on an exchange with `path` that failed with `err`. */
async function exchangeVerdict(err: unknown, path: string, timeoutMs: number | undefined): Promise<Verdict> {
  const e = err as { code?: string; state?: ActiveState; message?: string };
  if (e.code === 'ERR_IPC_TIMEOUT') {
    return {
      code: EXIT_TIMED_OUT,
      message: `no complete response from '${path}' within ${seconds(timeoutMs ?? 0)}: raise --timeout, or check whether the daemon is stuck`,
    };
  }
  if (e.code === 'ERR_IPC_INCOMPLETE_RESPONSE') {
    return {
      code: EXIT_INCOMPLETE,
      message: `the response from '${path}' was cut short (the connection ended before its end): the daemon's handler failed or the daemon stopped; see the daemon's log`,
    };
  }
  if (e.code === 'ERR_IPC_PROTOCOL') {
    return { code: EXIT_FAILED, message: `'${path}' answered with malformed pkt-lines: is a simple-ipc daemon listening there?` };
  }
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return { code: EXIT_FAILED, message: `permission denied connecting to '${path}': the daemon's socket (or its directory) does not let this user in` };
  }
  if (e.state === 'not-listening' || e.state === 'path-not-found') {
    // A file that is not a socket refuses connections too: tell them apart.
    return (await getActiveState(path)) === 'invalid-path' ? badPath(path) : noDaemon(path);
  }
  if (e.state === 'invalid-path') return badPath(path);
  return { code: EXIT_FAILED, message: `could not talk to '${path}': ${e.message ?? String(err)}` };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const CALL_OPTIONS: readonly OptionSpec[] = [
  { long: 'file', short: 'f', value: true },
  { long: 'timeout', short: 't', value: true },
];

export async function call(args: string[]): Promise<number> {
  const { positional, options } = parseArgs(args, CALL_OPTIONS, ['path', 'request'], 1);
  const path = positional[0]!;
  const file = options.get('file') as string | undefined;
  const timeoutText = options.get('timeout') as string | undefined;
  const timeoutMs = timeoutText === undefined ? undefined : parseSeconds('timeout', timeoutText);
  if (file !== undefined && positional.length > 1) throw new ArgsError('give the request as an argument, - or --file, not two of them');
  if (file === undefined && positional.length < 2) throw new ArgsError('missing <request> (an argument, - for stdin, or --file=<file>)');

  let request: Buffer;
  try {
    if (file !== undefined) request = fs.readFileSync(file);
    else if (positional[1] === '-') request = await readStdin();
    else request = Buffer.from(positional[1]!, 'utf8');
  } catch (err) {
    return fail({ code: EXIT_FAILED, message: `cannot read the request from '${file ?? '-'}': ${(err as Error).message}` });
  }

  try {
    for await (const chunk of streamCommand(path, request, timeoutMs === undefined ? {} : { timeoutMs })) await writeOutAndWait(chunk);
  } catch (err) {
    return fail(await exchangeVerdict(err, path, timeoutMs));
  }
  return EXIT_OK;
}

/** The exit code of an active state: 0 listening, 2 nobody there, 1 a path that cannot listen. */
function stateExitCode(state: ActiveState): number {
  if (state === 'listening') return EXIT_OK;
  if (state === 'not-listening' || state === 'path-not-found') return EXIT_NO_DAEMON;
  return EXIT_FAILED;
}

export async function state(args: string[]): Promise<number> {
  const { positional, options } = parseArgs(args, [{ long: 'json', value: false }], ['path'], 1);
  const path = positional[0]!;
  const active = await getActiveState(path);
  writeOut(options.has('json') ? `${JSON.stringify({ path, state: active })}\n` : `${active}\n`);
  return stateExitCode(active);
}

const STOP_OPTIONS: readonly OptionSpec[] = [
  { long: 'request', value: true },
  { long: 'timeout', short: 't', value: true },
];
const DEFAULT_STOP_TIMEOUT_MS = 10000;
const STOP_POLL_MS = 50;

export async function stop(args: string[]): Promise<number> {
  const { positional, options } = parseArgs(args, STOP_OPTIONS, ['path'], 1);
  const path = positional[0]!;
  const request = (options.get('request') as string | undefined) ?? 'quit';
  const timeoutText = options.get('timeout') as string | undefined;
  const timeoutMs = timeoutText === undefined ? DEFAULT_STOP_TIMEOUT_MS : parseSeconds('timeout', timeoutText);

  const before = await getActiveState(path);
  if (before === 'not-listening' || before === 'path-not-found') {
    return fail({ code: EXIT_NO_DAEMON, message: `no daemon is listening at '${path}': nothing to stop` });
  }
  if (before !== 'listening') return fail(badPath(path));

  const deadline = Date.now() + timeoutMs;
  // The answer does not matter: a daemon may stop before it answers.
  await sendCommand(path, request, { timeoutMs }).catch(() => undefined);
  while ((await getActiveState(path)) === 'listening') {
    if (Date.now() >= deadline) {
      return fail({
        code: EXIT_TIMED_OUT,
        message: `the daemon at '${path}' still listens ${seconds(timeoutMs)} after '${request}': raise --timeout, or give the request it stops on with --request`,
      });
    }
    await sleep(STOP_POLL_MS);
  }
  return EXIT_OK;
}
