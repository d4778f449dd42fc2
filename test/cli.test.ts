// End-to-end tests of the `simple-ipc` command line tool: every command runs
// as its own process, as a user (or Git's t0052-simple-ipc.sh) runs it.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, QUIT, type IpcServer } from '../dist/index.js';
import { bigResponseText, bigRow } from '../dist/test-app.js';
import { onCleanup, repoRoot, tempDir, waitFor } from './helpers.js';

const CLI = path.join(repoRoot, 'dist', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `simple-ipc ...args` in `cwd` and collects its output. */
function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
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

/** Stops a daemon the tool started in `cwd` if a test left one behind. */
function stopAfterTest(cwd: string, name = 'ipc-test'): void {
  onCleanup(async () => {
    if (fs.existsSync(path.join(cwd, name))) await cli(['stop-daemon', `--name=${name}`, '--max-wait=10'], cwd);
  });
}

/** A server in this process (the tool is the client), closed after the test. */
async function inProcessServer(p: string, handler: Parameters<typeof createServer>[1]): Promise<IpcServer> {
  const server = await createServer(p, handler, { threads: 2 });
  server.on('handlerError', () => {});
  onCleanup(() => server.close({ timeoutMs: 0 }));
  return server;
}

const BIG = bigResponseText();

describe('simple-ipc: the t0052 sequence against our own daemon', () => {
  it('starts, answers every test command, refuses a second daemon, and stops leaving nothing behind', async () => {
    const dir = tempDir('sipc-cli-');
    stopAfterTest(dir);

    // start-daemon with 8 threads, then is-active (default --name: ipc-test).
    let r = await cli(['start-daemon', '--threads=8'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    r = await cli(['is-active'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(fs.lstatSync(path.join(dir, 'ipc-test')).isSocket()).toBe(true);

    // ping gives exactly pong and a newline.
    r = await cli(['send', '--token=ping'], dir);
    expect(r).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });

    // A second server cannot take the live path; the first stays active.
    r = await cli(['run-daemon'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: socket/pipe already in use: 'ipc-test'\n" });
    expect((await cli(['is-active'], dir)).code).toBe(0);

    // slow (10 s or more) runs alongside the rest.
    const slow = cli(['send', '--token=slow'], dir);

    const [big, chunk] = await Promise.all([cli(['send', '--token=big'], dir), cli(['send', '--token=chunk'], dir)]);
    expect(big.code).toBe(0);
    expect(big.stdout.length).toBe(BIG.length + 1);
    expect(big.stdout === `${BIG}\n`).toBe(true);
    expect(big.stdout.split('\n').length).toBe(10002); // 10000 rows, the extra newline, the end
    expect(chunk.code).toBe(0);
    expect(chunk.stdout === `${BIG}\n`).toBe(true);

    r = await cli(['sendbytes', '--bytecount=100000', '--byte=A'], dir);
    expect(r).toEqual({ code: 0, stdout: 'sent:A00100000 rcvd:A00100000\n', stderr: '' });

    r = await cli(['multiple', '--threads=7', '--bytecount=19', '--batchsize=13'], dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(92);
    expect(lines[91]).toBe('client (good 91) (join 0), (errors 0)');
    for (const letter of 'ABCDEFG') {
      const mine = lines.filter((l) => l.startsWith(`sent:${letter}`));
      const expected = Array.from({ length: 13 }, (_, i) => {
        const n = String(19 + i).padStart(8, '0');
        return `sent:${letter}${n} rcvd:${letter}${n}`;
      });
      expect(mine).toEqual(expected);
    }

    r = await cli(['send', '--token=hello'], dir);
    expect(r).toEqual({ code: 0, stdout: 'unhandled command: hello\n', stderr: '' });
    r = await cli(['send'], dir);
    expect(r).toEqual({ code: 0, stdout: 'unhandled command: (no-command)\n', stderr: '' });

    const s = await slow;
    expect(s.code).toBe(0);
    let expectedSlow = '';
    for (let row = 0; row < 1000; row++) expectedSlow += bigRow(row);
    expect(s.stdout === `${expectedSlow}\n`).toBe(true);

    // stop-daemon; then nothing listens and nothing is left.
    r = await cli(['stop-daemon'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    r = await cli(['is-active'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" });
    r = await cli(['send', '--token=ping'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" });
    expect(fs.existsSync(path.join(dir, 'ipc-test'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'ipc-test.lock'))).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('simple-ipc: options', () => {
  it('takes --name as a path, raises numbers below 1, takes the first byte of --byte, accepts abbreviations', async () => {
    const dir = tempDir('sipc-cli-');
    const name = path.join(dir, 'sub dir', 'my.ipc');
    fs.mkdirSync(path.dirname(name));
    stopAfterTest(dir, path.relative(dir, name));
    expect((await cli(['start-daemon', `--name=${name}`, '--threads=0', '--max-wait=10'], dir)).code).toBe(0);
    expect((await cli(['is-active', '--name', name], dir)).code).toBe(0);

    let r = await cli(['multiple', `--name=${name}`, '--threads=0', '--bytecount=-3', '--batchsize=0'], dir);
    expect(r).toEqual({ code: 0, stdout: 'sent:A00000001 rcvd:A00000001\nclient (good 1) (join 0), (errors 0)\n', stderr: '' });

    r = await cli(['sendbytes', `--name=${name}`, '--byte=QZ', '--bytecount=3'], dir);
    expect(r.stdout).toBe('sent:Q00000003 rcvd:Q00000003\n');
    r = await cli(['sendbytes', `--name=${name}`, '--bytecount=0'], dir);
    expect(r.stdout).toBe('sent:x00000001 rcvd:x00000001\n');
    // Abbreviated options, a value in the next argument, ignored extra words.
    r = await cli(['send', 'extra', '--na', name, '--tok=ping'], dir);
    expect(r).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });
    // --no-token falls back to (no-command).
    r = await cli(['send', `--name=${name}`, '--token=ping', '--no-token'], dir);
    expect(r.stdout).toBe('unhandled command: (no-command)\n');

    // multiple: beyond 26 senders the letters repeat with longer ballast.
    r = await cli(['multiple', `--name=${name}`, '--threads=28', '--bytecount=5', '--batchsize=2'], dir);
    expect(r.code).toBe(0);
    const a = r.stdout.split('\n').filter((l) => l.startsWith('sent:A'));
    expect(a.sort()).toEqual(['sent:A00000005 rcvd:A00000005', 'sent:A00000006 rcvd:A00000006', 'sent:A00000007 rcvd:A00000007', 'sent:A00000008 rcvd:A00000008']);
    expect(r.stdout.endsWith('client (good 56) (join 0), (errors 0)\n')).toBe(true);

    expect((await cli(['stop-daemon', `--name=${name}`], dir)).code).toBe(0);
    expect(fs.readdirSync(path.dirname(name))).toEqual([]);
  });

  it('prints usage and exits 129 on bad options, 128 on an unknown subcommand', async () => {
    const dir = tempDir('sipc-cli-');
    let r = await cli([], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^usage: simple-ipc is-active/);

    r = await cli(['--help'], dir);
    expect(r.code).toBe(0);
    for (const word of ['is-active', 'run-daemon', 'start-daemon', 'stop-daemon', 'send', 'sendbytes', 'multiple', '--name', '--threads', '--max-wait', '--bytecount', '--batchsize', '--byte', '--token']) {
      expect(r.stdout).toContain(word);
    }

    r = await cli(['send', '--help'], dir);
    expect(r.code).toBe(129);
    expect(r.stdout).toMatch(/^usage: /);

    r = await cli(['frobnicate'], dir);
    expect(r).toEqual({ code: 128, stdout: '', stderr: "fatal: Unhandled subcommand: 'frobnicate'\n" });

    r = await cli(['send', '--bogus=1'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unknown option `bogus=1'\nusage: simple-ipc/);

    r = await cli(['send', '-x'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unknown switch `x'\nusage: /);

    r = await cli(['send', '--t=1'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toBe('error: ambiguous option: t=1 (could be --threads or --token)\n');

    r = await cli(['multiple', '--threads=many'], dir);
    expect(r).toEqual({ code: 129, stdout: '', stderr: "error: option `threads' expects a numerical value\n" });

    r = await cli(['send', '--token'], dir);
    expect(r).toEqual({ code: 129, stdout: '', stderr: "error: option `token' requires a value\n" });
  });
});

describe('simple-ipc: every error message', () => {
  it('is-active and the client subcommands report the active state of the path', async () => {
    const dir = tempDir('sipc-cli-');
    fs.writeFileSync(path.join(dir, 'file'), 'data');
    await Promise.all(
      ['is-active', 'send', 'sendbytes', 'multiple', 'stop-daemon'].map(async (sub) => {
        expect(await cli([sub], dir)).toEqual({ code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" });
        expect(await cli([sub, '--name=file'], dir)).toEqual({ code: 1, stdout: '', stderr: "error: invalid pipe/socket name 'file'\n" });
      }),
    );
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('data');
  });

  it('reports path-not-found and other-error when connect() fails that way', async (ctx) => {
    // connect() cannot be made to fail with ENOENT or EACCES on a live
    // socket for root; a preloaded shim makes it fail on demand.
    const dir = tempDir('sipc-cli-');
    const shim = path.join(dir, 'fail-connect.so');
    fs.writeFileSync(
      path.join(dir, 'fail-connect.c'),
      `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  const char *e = getenv("FAIL_CONNECT_ERRNO");
  if (e && addr && addr->sa_family == AF_UNIX) { errno = atoi(e); return -1; }
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  return real(fd, addr, len);
}
`,
    );
    try {
      execFileSync('cc', ['-shared', '-fPIC', '-o', shim, path.join(dir, 'fail-connect.c'), '-ldl'], { stdio: 'ignore' });
    } catch {
      ctx.skip();
      return;
    }
    await inProcessServer(path.join(dir, 'live.ipc'), () => 'pong');
    const env = (errno: number) => ({ LD_PRELOAD: shim, FAIL_CONNECT_ERRNO: String(errno) });
    const ENOENT = 2;
    const EACCES = 13;
    expect(await cli(['is-active', '--name=live.ipc'], dir, env(ENOENT))).toEqual({ code: 1, stdout: '', stderr: "error: path not found 'live.ipc'\n" });
    expect(await cli(['send', '--name=live.ipc'], dir, env(EACCES))).toEqual({ code: 1, stdout: '', stderr: "error: other error for 'live.ipc'\n" });
    expect(await cli(['is-active', '--name=live.ipc'], dir, env(EACCES))).toEqual({ code: 1, stdout: '', stderr: "error: other error for 'live.ipc'\n" });
    // And the shim is what made them fail.
    expect(await cli(['is-active', '--name=live.ipc'], dir)).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('run-daemon: could not start server', async () => {
    const dir = tempDir('sipc-cli-');
    const r = await cli(['run-daemon', '--name=no/such/dir/x.ipc'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: could not start server on: 'no/such/dir/x.ipc': No such file or directory\n" });
  });

  it('start-daemon: failed to start, terminated, not online yet', async () => {
    const dir = tempDir('sipc-cli-');
    fs.writeFileSync(path.join(dir, 'file'), 'data');
    // A path that can never be a socket: the probe gives up at once.
    expect(await cli(['start-daemon', '--name=file'], dir)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon failed to start\n' });
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('data');
    // The daemon cannot create its socket and exits.
    expect(await cli(['start-daemon', '--name=missing/x.ipc'], dir)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon terminated\n' });
    // No time to come up; the daemon still starts in the background.
    stopAfterTest(dir);
    expect(await cli(['start-daemon', '--max-wait=0'], dir)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon not online yet\n' });
    await waitFor(() => fs.existsSync(path.join(dir, 'ipc-test')), 10000, 'the late daemon');
    expect((await cli(['stop-daemon'], dir)).code).toBe(0);
  });

  it('stop-daemon: a daemon that ignores quit has not shut down', async () => {
    const dir = tempDir('sipc-cli-');
    let quits = 0;
    await inProcessServer(path.join(dir, 'stubborn.ipc'), (request) => {
      if (request.toString() === 'quit') quits++;
      return '';
    });
    const r = await cli(['stop-daemon', '--name=stubborn.ipc', '--max-wait=0'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: daemon has not shutdown yet\n' });
    expect(quits).toBe(1);
  });

  it('send, sendbytes and multiple: a server that fails the exchange', async () => {
    const dir = tempDir('sipc-cli-');
    // A handler that throws: the client gets no flush, an incomplete response.
    await inProcessServer(path.join(dir, 'broken.ipc'), () => {
      throw new Error('broken');
    });
    let r = await cli(['send', '--name=broken.ipc', '--token=ping'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith("error: failed to send 'ping' to 'broken.ipc'\n")).toBe(true);

    r = await cli(['sendbytes', '--name=broken.ipc', '--bytecount=10', '--byte=z'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith("error: client failed to sendbytes(10, 'z') to 'broken.ipc'\n")).toBe(true);

    r = await cli(['multiple', '--name=broken.ipc', '--threads=2', '--batchsize=2'], dir);
    expect(r).toMatchObject({ code: 1, stdout: 'client (good 0) (join 0), (errors 4)\n' });
    expect(r.stderr.match(/client failed to sendbytes/g)?.length).toBe(4);
  });

  it('a QUIT from an application server is an empty response: send prints nothing', async () => {
    const dir = tempDir('sipc-cli-');
    const server = await inProcessServer(path.join(dir, 'q.ipc'), () => QUIT);
    expect(await cli(['send', '--name=q.ipc', '--token=anything'], dir)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await server.closed).toBe('quit');
  });
});
