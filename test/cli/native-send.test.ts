// The native command-line client, simple-ipc-send (native/cli), run as its
// own process against real daemons: our test daemon, servers made here
// with createServer, a raw socket that breaks the protocol, and Git's own
// daemon (`test-tool simple-ipc run-daemon`) when it is built
// (bench/git/build-test-tool.sh). The program is built for this machine
// first (scripts/prebuild/cli.mjs --host) unless SIPC_SEND_BINARY names one
// (a prebuild, or the Windows one under Wine: test/win).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bigResponseText } from '../../dist/test-app.js';
import * as exitCodes from '../../dist/cli/exit-codes.js';
import { findGitTestTool } from '../../bench/lib/git-ref.mjs';
import { onCleanup, posix, repoRoot, socketPath, staleSocket, tempDir } from '../helpers.js';
import { serve } from '../servers.js';
import { cli } from './helpers.js';

let binary = process.env.SIPC_SEND_BINARY ?? '';

beforeAll(() => {
  if (binary) return;
  const out = path.join(repoRoot, 'build', 'cli');
  const r = spawnSync(process.execPath, ['scripts/prebuild/cli.mjs', '--host', `--out=${out}`], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building simple-ipc-send failed:\n${r.stdout}${r.stderr}`);
  binary = path.join(out, process.platform === 'win32' ? 'simple-ipc-send.exe' : 'simple-ipc-send');
}, 180000);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs simple-ipc-send with `args`, `input` on its stdin. */
function send(args: string[], input?: Uint8Array): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on('error', () => {}); // a program that did not read its stdin
    child.stdin.end(input ?? null);
  });
}

describe('simple-ipc-send: exit codes', () => {
  it('uses the numbers of lib/cli/exit-codes.ts, under the same names', () => {
    const header = fs.readFileSync(path.join(repoRoot, 'native', 'cli', 'exit_codes.h'), 'utf8');
    const native = Object.fromEntries([...header.matchAll(/constexpr int kExit(\w+) = (\d+);/g)].map((m) => [m[1]!, Number(m[2])]));
    const js = Object.fromEntries(
      Object.entries(exitCodes)
        .filter(([name, value]) => name.startsWith('EXIT_') && typeof value === 'number')
        .map(([name, value]) => [name.slice(5).toLowerCase().replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), value]),
    );
    expect(Object.keys(native).length).toBeGreaterThanOrEqual(6);
    for (const [name, value] of Object.entries(native)) {
      const jsName = name[0]!.toLowerCase() + name.slice(1);
      expect({ name, value }).toEqual({ name, value: js[jsName] });
    }
  });
});

describe('simple-ipc-send against our daemon', () => {
  let dir: string;
  let sock: string;
  beforeAll(async () => {
    // Not tempDir(): that one goes after each test, with the daemon's socket.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-nsend-'));
    sock = path.join(dir, 'd.ipc');
    const r = await cli(['start-daemon', `--name=${sock}`, '--threads=4'], dir);
    expect(r.code).toBe(0);
  });
  afterAll(async () => {
    await cli(['stop-daemon', `--name=${sock}`, '--max-wait=10'], dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints the response byte for byte and exits 0 (ping, big, chunk)', async () => {
    expect(await send([sock, 'ping'])).toEqual({ code: 0, signal: null, stdout: Buffer.from('pong'), stderr: '' });
    const big = bigResponseText();
    for (const command of ['big', 'chunk']) {
      const r = await send([sock, command]);
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBe(big.length);
      expect(r.stdout.toString('latin1') === big).toBe(true);
    }
  });

  it('reads the request from stdin (-) and from --file', async () => {
    const request = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(300000, 'q')]);
    let r = await send([sock, '-'], request);
    expect(r).toEqual({ code: 0, signal: null, stdout: Buffer.from('rcvd:q00300000\n'), stderr: '' });
    const file = path.join(dir, 'request');
    fs.writeFileSync(file, request);
    r = await send([sock, `--file=${file}`]);
    expect(r.stdout.toString()).toBe('rcvd:q00300000\n');
    r = await send(['-f', file, sock]);
    expect(r.stdout.toString()).toBe('rcvd:q00300000\n');
    r = await send([sock, '--file', path.join(dir, 'none')]);
    expect(r.code).toBe(exitCodes.EXIT_FAILED);
    expect(r.stderr).toMatch(/^error: cannot read the request from '.*none': /);
  });

  it('exits 3 when --timeout runs out, within a bound near it', async () => {
    const started = Date.now();
    const r = await send([sock, 'slow', '--timeout=0.3']);
    expect(r.code).toBe(exitCodes.EXIT_TIMED_OUT);
    expect(r.stderr).toBe(`error: no complete response from '${sock}' within 0.3 s: raise --timeout, or check whether the daemon is stuck\n`);
    expect(r.stdout.toString()).toMatch(/^big: /); // what came before the deadline was printed
    expect(Date.now() - started).toBeLessThan(5000); // slow takes 10 s
  });

  it('tells bad usage (129) from --help (0)', async () => {
    for (const args of [[], [sock], [sock, 'a', 'b'], [sock, 'a', '--file=x'], [sock, 'a', '--timeout=0'], [sock, 'a', '--timeout=x'], ['--bogus', sock, 'a']]) {
      const r = await send(args);
      expect({ args, code: r.code }).toEqual({ args, code: exitCodes.EXIT_USAGE });
      expect(r.stderr).toMatch(/^error: .*\nusage: simple-ipc-send /);
    }
    const r = await send(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/^usage: simple-ipc-send/);
  });

  it('is what the simple-ipc-send launcher (package.json bin) runs, when built for this machine', async () => {
    const launcher = path.join(repoRoot, 'dist', 'send.js');
    const which = spawnSync(process.execPath, [launcher, '--which'], { encoding: 'utf8' });
    expect(which.status).toBe(0);
    expect(fs.existsSync(which.stdout.trim())).toBe(true);
    const r = spawnSync(process.execPath, [launcher, sock, 'ping'], { encoding: 'utf8' });
    expect({ code: r.status, stdout: r.stdout }).toEqual({ code: 0, stdout: 'pong' });
    const none = spawnSync(process.execPath, [launcher, path.join(dir, 'none'), 'ping'], { encoding: 'utf8' });
    expect(none.status).toBe(exitCodes.EXIT_NO_DAEMON);
    // `simple-ipc call`, the launcher's fallback, answers the same way.
    const call = await cli(['call', sock, 'ping'], dir);
    expect({ code: call.code, stdout: call.stdout }).toEqual({ code: 0, stdout: 'pong' });
    expect((await cli(['call', path.join(dir, 'none'), 'ping'], dir)).code).toBe(exitCodes.EXIT_NO_DAEMON);
  });

  it('the launcher falls back to `simple-ipc call` where no native client fits, with the same exit codes', () => {
    // A copy of the package with no prebuilds/ and no build/cli: only the
    // addon is found, through SIMPLE_IPC_PREBUILD.
    const copy = tempDir('sipc-nsend-pkg-');
    fs.cpSync(path.join(repoRoot, 'dist'), path.join(copy, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(copy, 'package.json'));
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'));
    const env = { ...process.env, SIMPLE_IPC_PREBUILD: repoRoot };
    const launcher = path.join(copy, 'dist', 'send.js');
    const run = (args: string[]) => spawnSync(process.execPath, [launcher, ...args], { env, encoding: 'utf8' });
    const which = run(['--which']);
    expect({ status: which.status, stdout: which.stdout }).toEqual({ status: 1, stdout: '' });
    expect(which.stderr).toMatch(/no native client for .*simple-ipc call/);
    expect(run([sock, 'ping'])).toMatchObject({ status: 0, stdout: 'pong' });
    expect(run([path.join(dir, 'none'), 'ping']).status).toBe(exitCodes.EXIT_NO_DAEMON);
    expect(run([sock, 'slow', '--timeout=0.3']).status).toBe(exitCodes.EXIT_TIMED_OUT);
  });

  it.runIf(posix)('dies of SIGPIPE, as Git does, when stdout goes away', async () => {
    const r = spawnSync('bash', ['-c', '"$0" "$1" big | head -c 10 >/dev/null; echo "${PIPESTATUS[0]}"', binary, sock], { encoding: 'utf8' });
    expect(r.stdout).toBe('141\n'); // 128 + SIGPIPE
  });
});

describe('simple-ipc-send: requests and responses as bytes, streamed', () => {
  it('sends and prints every byte value unchanged, in both directions, up to 2 MB', async () => {
    const sock = socketPath();
    await serve(sock, (request) => request);
    const all = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < all.length; i++) all[i] = (i * 7 + (i >> 8)) & 0xff;
    const r = await send([sock, '-'], all);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(all)).toBe(true);
    // An argument is sent as it is (UTF-8).
    const text = await send([sock, 'é ✓ -- @x']);
    expect(text.stdout.toString()).toBe('é ✓ -- @x');
  });

  it('writes each piece of the response as it arrives, before the response ends', async () => {
    const sock = socketPath();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await serve(sock, async (_request, reply) => {
      await reply.write('first piece\n');
      await released; // the rest only once the client has printed the first
      return 'rest\n';
    });
    const child = spawn(binary, [sock, 'go'], { stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => child.kill());
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('first piece\n')) release();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(out).toBe('first piece\nrest\n');
  });
});

describe('simple-ipc-send: what goes wrong has its own exit code', () => {
  it('exits 2 when no daemon listens: no file, a stale socket, a missing directory', async () => {
    const dir = tempDir('sipc-nsend-');
    const none = path.join(dir, 'none.ipc');
    let r = await send([none, 'ping']);
    expect(r).toEqual({ code: exitCodes.EXIT_NO_DAEMON, signal: null, stdout: Buffer.alloc(0), stderr: `error: no daemon is listening at '${none}': start it, or check the path\n` });
    r = await send([path.join(dir, 'no', 'dir.ipc'), 'ping']);
    expect(r.code).toBe(exitCodes.EXIT_NO_DAEMON);
    if (posix) {
      const stale = path.join(dir, 'stale.ipc');
      await staleSocket(stale);
      r = await send([stale, 'ping']);
      expect(r.code).toBe(exitCodes.EXIT_NO_DAEMON);
    }
  });

  it.runIf(posix)('exits 1 for a path that is not a socket', async () => {
    const file = path.join(tempDir('sipc-nsend-'), 'file');
    fs.writeFileSync(file, 'x');
    const r = await send([file, 'ping']);
    expect(r.code).toBe(exitCodes.EXIT_FAILED);
    expect(r.stderr).toMatch(/is not a socket a daemon listens on/);
  });

  it('exits 4 when the daemon hangs up before the end, after printing what came; 1 on malformed pkt-lines', async () => {
    const sock = socketPath();
    const reply = new Map<string, Buffer>([
      ['cut', Buffer.from('0008part0009mo')], // a whole packet, part of the next, then the end
      ['bad', Buffer.from('00zzjunk')],
    ]);
    const server = net.createServer((conn) => {
      let got = '';
      conn.on('data', (d) => {
        got += d.toString('latin1');
        if (got.endsWith('0000')) conn.end(reply.get(got.slice(4, -4)) ?? Buffer.alloc(0));
      });
      conn.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    onCleanup(() => server.close());
    let r = await send([sock, 'cut']);
    expect(r.code).toBe(exitCodes.EXIT_INCOMPLETE);
    expect(r.stdout.toString()).toBe('partmo'); // printed as it came
    expect(r.stderr).toMatch(/^error: the response from '.*' was cut short/);
    r = await send([sock, 'bad']);
    expect(r.code).toBe(exitCodes.EXIT_FAILED);
    expect(r.stderr).toMatch(/answered with malformed pkt-lines/);
  });
});

// Git's daemon, and Git's t0052 `send` requests: our client on Git's wire.
const git = findGitTestTool();
describe.runIf(posix && git.tool !== null)("simple-ipc-send against Git's own daemon (test-tool simple-ipc)", () => {
  it("gets t0052's ping, big, chunk and sendbytes answers", async () => {
    const dir = tempDir('sipc-nsend-git-');
    const sock = path.join(dir, 'git.ipc');
    const tool = git.tool!;
    // start-daemon runs `test-tool` from PATH.
    const env = { ...process.env, PATH: `${path.dirname(tool)}${path.delimiter}${process.env.PATH ?? ''}` };
    expect(spawnSync(tool, ['simple-ipc', 'start-daemon', `--name=${sock}`, '--threads=4'], { cwd: dir, env }).status).toBe(0);
    onCleanup(() => spawnSync(tool, ['simple-ipc', 'stop-daemon', `--name=${sock}`], { cwd: dir }));
    expect((await send([sock, 'ping'])).stdout.toString()).toBe('pong');
    const expected = spawnSync(tool, ['simple-ipc', 'send', `--name=${sock}`, '--token=big'], { cwd: dir, maxBuffer: 1 << 24 }).stdout;
    for (const command of ['big', 'chunk']) {
      const r = await send([sock, command]);
      expect(r.code).toBe(0);
      // Git's helper prints the response and a newline.
      expect(Buffer.concat([r.stdout, Buffer.from('\n')]).equals(expected)).toBe(true);
    }
    const r = await send([sock, '-'], Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(100000, 'A')]));
    expect(r.stdout.toString()).toBe('rcvd:A00100000\n');
  });

  // Git's own test script, with this program as the client of its send and
  // sendbytes cases (bench/git/t0052-native.sh); needs Git's source tree
  // beside test-tool, as build-test-tool.sh leaves it.
  const gitSource = fs.existsSync(path.dirname(git.tool ?? '/')) && fs.readdirSync(path.dirname(git.tool ?? '/')).some((f) => /^git-\d/.test(f));
  it.runIf(gitSource)("passes Git's t0052-simple-ipc.sh in place of Git's client", () => {
    const r = spawnSync('bash', [path.join(repoRoot, 'bench', 'git', 't0052-native.sh'), binary, path.dirname(git.tool!)], { encoding: 'utf8', timeout: 300000 });
    const summary = r.stdout.split('\n').filter((l) => /^(ok|not ok) |^# |^t0052-native:/.test(l));
    expect({ status: r.status, summary }).toMatchObject({ status: 0 });
    expect(summary).toContain('# passed all 9 test(s)');
    expect(r.stdout).toMatch(/t0052-native: 6 requests sent by .* 5 send, 1 sendbytes,/);
  });
});

describe('examples/counter/counter.sh: the native client in front of a warm daemon', () => {
  it.runIf(posix)('starts the daemon through client.js once, then answers without Node.js', async () => {
    const socket = path.join(tempDir('sipc-nsend-ex-'), 'counter.ipc');
    const script = path.join(repoRoot, 'examples', 'counter', 'counter.sh');
    const env = { ...process.env, COUNTER_SOCKET: socket, SIMPLE_IPC_SEND: binary, COUNTER_IDLE_MS: '60000' };
    onCleanup(() => spawnSync(binary, [socket, 'quit']));
    // No daemon: the native client exits 2, client.js starts the daemon.
    let r = spawnSync('sh', [script, 'incr', 'builds'], { env, encoding: 'utf8' });
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: '1\n' });
    // Warm: with no node on the PATH, only the native client can answer.
    const noNode = { COUNTER_SOCKET: socket, SIMPLE_IPC_SEND: binary, PATH: '/nonexistent' };
    r = spawnSync('/bin/sh', [script, 'incr', 'builds'], { env: noNode, encoding: 'utf8' });
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: '2\n' });
    r = spawnSync('/bin/sh', [script, 'get', 'builds'], { env: noNode, encoding: 'utf8' });
    expect(r.stdout).toBe('2\n');
  });
});
