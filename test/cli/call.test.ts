// The daemon author's commands (call, state, stop), each run as its own
// process against real servers: requests from an argument, a file and
// stdin, byte for byte; the response streamed to stdout; one exit code per
// outcome (lib/cli/exit-codes.ts); errors that name the path and what to do.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { getActiveState } from '../../dist/index.js';
import { EXIT_FAILED, EXIT_INCOMPLETE, EXIT_NO_DAEMON, EXIT_OK, EXIT_TIMED_OUT, EXIT_USAGE } from '../../dist/cli/exit-codes.js';
import { onCleanup, staleSocket, tempDir } from '../helpers.js';
import { inProcessServer } from '../servers.js';
import { CLI, cli, cliBytes } from './helpers.js';

/** Every byte value, twice, and a NUL-heavy tail: no text encoding survives it. */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)), Buffer.alloc(70000)]);

describe('simple-ipc call', () => {
  it('sends a request from an argument, a file or stdin, byte for byte, and prints the response as it is', async () => {
    const dir = tempDir('sipc-call-');
    const p = path.join(dir, 'echo.ipc');
    await inProcessServer(p, (request) => (request.toString() === 'ping' ? 'pong' : request));

    // An argument: the response exactly, no newline added.
    expect(await cli(['call', p, 'ping'], dir)).toEqual({ code: EXIT_OK, stdout: 'pong', stderr: '' });
    // An empty request is a request.
    expect(await cliBytes(['call', p, ''], dir)).toEqual({ code: EXIT_OK, stdout: Buffer.alloc(0), stderr: '' });

    // stdin and a file: every byte value, larger than one packet.
    const fromStdin = await cliBytes(['call', p, '-'], dir, BINARY);
    expect(fromStdin.code).toBe(EXIT_OK);
    expect(fromStdin.stderr).toBe('');
    expect(fromStdin.stdout.equals(BINARY)).toBe(true);
    const file = path.join(dir, 'request.bin');
    fs.writeFileSync(file, BINARY);
    const fromFile = await cliBytes(['call', '--file', file, p], dir);
    expect(fromFile.code).toBe(EXIT_OK);
    expect(fromFile.stdout.equals(BINARY)).toBe(true);
    // Options anywhere, -- before a request that starts with a dash.
    expect(await cli(['call', '--timeout=30', p, '--', '--not-an-option'], dir)).toEqual({ code: EXIT_OK, stdout: '--not-an-option', stderr: '' });
  });

  it('writes each chunk of the response as it arrives', async () => {
    const dir = tempDir('sipc-call-');
    const p = path.join(dir, 'stream.ipc');
    // The handler sends its first chunk and waits until the test has seen
    // it on the tool's stdout; a tool that held the response back until
    // its end would get 'late' after 30 s instead.
    let seen!: () => void;
    const firstChunkSeen = new Promise<void>((resolve) => (seen = resolve));
    await inProcessServer(p, async (_request, reply) => {
      await reply.write('first\n');
      const which = await Promise.race([firstChunkSeen.then(() => 'second\n'), new Promise<string>((r) => setTimeout(() => r('late\n'), 30000).unref())]);
      return which;
    });
    const child = spawn(process.execPath, [CLI, 'call', p, 'go'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('first\n')) seen();
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect({ code, out }).toEqual({ code: EXIT_OK, out: 'first\nsecond\n' });
  });

  it('exit codes: no daemon, timed out, incomplete response, not a socket, bad usage', async () => {
    const dir = tempDir('sipc-call-');
    const missing = path.join(dir, 'missing.ipc');
    const stale = path.join(dir, 'stale.ipc');
    await staleSocket(stale);
    const regular = path.join(dir, 'file');
    fs.writeFileSync(regular, 'data');
    const hanging = path.join(dir, 'hanging.ipc');
    await inProcessServer(hanging, (_request, _reply, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(undefined))));
    const failing = path.join(dir, 'failing.ipc');
    await inProcessServer(failing, async (_request, reply) => {
      await reply.write('part of it');
      throw new Error('the handler failed');
    });

    const [noFile, noListener, notSocket, timedOut, incomplete] = await Promise.all([
      cli(['call', missing, 'ping'], dir),
      cli(['call', stale, 'ping'], dir),
      cli(['call', regular, 'ping'], dir),
      cli(['call', '--timeout=0.5', hanging, 'ping'], dir),
      cli(['call', failing, 'ping'], dir),
    ]);
    expect(noFile).toEqual({ code: EXIT_NO_DAEMON, stdout: '', stderr: `error: no daemon is listening at '${missing}': start it, or check the path\n` });
    expect(noListener).toEqual({ code: EXIT_NO_DAEMON, stdout: '', stderr: `error: no daemon is listening at '${stale}': start it, or check the path\n` });
    expect(notSocket).toEqual({
      code: EXIT_FAILED,
      stdout: '',
      stderr: `error: '${regular}' is not a socket a daemon listens on (or a directory of it is missing): check the path\n`,
    });
    expect(timedOut).toEqual({
      code: EXIT_TIMED_OUT,
      stdout: '',
      stderr: `error: no complete response from '${hanging}' within 0.5 s: raise --timeout, or check whether the daemon is stuck\n`,
    });
    // What arrived before the cut is on stdout; the exit code says it is not all.
    expect(incomplete).toEqual({
      code: EXIT_INCOMPLETE,
      stdout: 'part of it',
      stderr: `error: the response from '${failing}' was cut short (the connection ended before its end): the daemon's handler failed or the daemon stopped; see the daemon's log\n`,
    });
    expect(fs.readFileSync(regular, 'utf8')).toBe('data');

    // Usage errors name the word and show the usage.
    const usage = await Promise.all([
      cli(['call'], dir),
      cli(['call', missing], dir),
      cli(['call', missing, 'a', 'b'], dir),
      cli(['call', '--tiemout=1', missing, 'a'], dir),
      cli(['call', '--timeout=soon', missing, 'a'], dir),
      cli(['call', '--file=x', missing, 'a'], dir),
    ]);
    expect(usage.map((r) => [r.code, r.stderr.split('\n')[0]])).toEqual([
      [EXIT_USAGE, 'error: missing <path>'],
      [EXIT_USAGE, 'error: missing <request> (an argument, - for stdin, or --file=<file>)'],
      [EXIT_USAGE, "error: unexpected argument 'b'"],
      [EXIT_USAGE, "error: unknown option '--tiemout' (did you mean --timeout?)"],
      [EXIT_USAGE, "error: option '--timeout' expects a number of seconds above 0, not 'soon'"],
      [EXIT_USAGE, 'error: give the request as an argument, - or --file, not two of them'],
    ]);
    for (const r of usage) expect(r.stderr).toContain("See 'simple-ipc help call'.");

    const unreadable = await cli(['call', '--file', path.join(dir, 'no-such-request'), missing], dir);
    expect(unreadable.code).toBe(EXIT_FAILED);
    expect(unreadable.stderr).toMatch(/^error: cannot read the request from '.*no-such-request': ENOENT/);
  });
});

describe('simple-ipc state and stop', () => {
  it('state prints the active state, as text or JSON, with its exit code', async () => {
    const dir = tempDir('sipc-call-');
    const live = path.join(dir, 'live.ipc');
    await inProcessServer(live, () => 'pong');
    const regular = path.join(dir, 'file');
    fs.writeFileSync(regular, '');
    const missing = path.join(dir, 'missing.ipc');
    expect(await cli(['state', live], dir)).toEqual({ code: EXIT_OK, stdout: 'listening\n', stderr: '' });
    expect(await cli(['state', '--json', live], dir)).toEqual({ code: EXIT_OK, stdout: `${JSON.stringify({ path: live, state: 'listening' })}\n`, stderr: '' });
    expect(await cli(['state', missing], dir)).toEqual({ code: EXIT_NO_DAEMON, stdout: 'not-listening\n', stderr: '' });
    expect(await cli(['state', regular], dir)).toEqual({ code: EXIT_FAILED, stdout: 'invalid-path\n', stderr: '' });
    expect((await cli(['state', live, 'extra'], dir)).code).toBe(EXIT_USAGE);
  });

  it('stop asks the daemon to stop and waits until it has; says when there is none or it does not stop', async () => {
    const dir = tempDir('sipc-call-');
    const name = 'daemon.ipc';
    const p = path.join(dir, name);
    expect((await cli(['start-daemon', `--name=${name}`, '--max-wait=30'], dir)).code).toBe(0);
    onCleanup(() => cli(['stop-daemon', `--name=${name}`, '--max-wait=10'], dir));
    expect(await cli(['stop', p], dir)).toEqual({ code: EXIT_OK, stdout: '', stderr: '' });
    expect(await getActiveState(p)).not.toBe('listening');

    expect(await cli(['stop', p], dir)).toEqual({ code: EXIT_NO_DAEMON, stdout: '', stderr: `error: no daemon is listening at '${p}': nothing to stop\n` });

    // A daemon that answers 'quit' but does not stop; it stops on 'shutdown'.
    const stubborn = path.join(dir, 'stubborn.ipc');
    const server = await inProcessServer(stubborn, (request) => (request.toString() === 'shutdown' ? Symbol.for('simple-ipc.quit') as never : 'no'));
    expect(await cli(['stop', '--timeout=0.3', stubborn], dir)).toEqual({
      code: EXIT_TIMED_OUT,
      stdout: '',
      stderr: `error: the daemon at '${stubborn}' still listens 0.3 s after 'quit': raise --timeout, or give the request it stops on with --request\n`,
    });
    expect(await cli(['stop', '--request=shutdown', stubborn], dir)).toEqual({ code: EXIT_OK, stdout: '', stderr: '' });
    expect(await server.closed).toBe('quit');
  });
});

describe('simple-ipc: help, version, mistakes', () => {
  it('--version, help <command>, <command> --help exit 0; an unknown command gets the nearest', async () => {
    const dir = tempDir('sipc-call-');
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(await cli(['--version'], dir)).toEqual({ code: 0, stdout: `simple-ipc ${pkg.version}\n`, stderr: '' });
    for (const command of ['call', 'state', 'stop', 'send', 'start-daemon']) {
      const viaHelp = await cli(['help', command], dir);
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^usage: simple-ipc ${command} `));
      expect(await cli([command, '--help'], dir)).toEqual(viaHelp);
    }
    const all = await cli(['help'], dir);
    expect(all.code).toBe(0);
    for (const word of ['call', 'state', 'stop', 'send', 'multiple', '--version']) expect(all.stdout).toContain(word);
    expect(await cli(['help', 'cal'], dir)).toEqual({ code: EXIT_USAGE, stdout: '', stderr: "error: no such command 'cal'; did you mean 'call'?\n" });
    expect(await cli(['stat', '/x'], dir)).toEqual({ code: 128, stdout: '', stderr: "fatal: Unhandled subcommand: 'stat'\nhint: did you mean 'state'?\n" });
    expect(await cli(['stpo', '/x'], dir)).toEqual({ code: 128, stdout: '', stderr: "fatal: Unhandled subcommand: 'stpo'\nhint: did you mean 'stop'?\n" });
  });
});
