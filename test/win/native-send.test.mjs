// The native client on Windows, simple-ipc-send.exe (native/cli), over
// named pipes: the cases of test/cli/native-send.test.ts that say something
// about the Windows side (its own I/O: the UTF-16 command line, stdin,
// files, stdout; the Windows blocking client). scripts/win/test.sh builds
// the program (scripts/prebuild/cli.mjs, Zig) and names it in
// SIPC_WINTEST_SEND; otherwise the committed prebuild is used.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { bigRow, gitPipeName, ipcPath, repoRoot, serve, tempDir } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const program = process.env.SIPC_WINTEST_SEND || path.join(repoRoot, 'prebuilds', 'win32-x64', 'simple-ipc-send.exe');
const missing = !fs.existsSync(program) && `no ${program}: npm run test:win builds it`;

// lib/cli/exit-codes.ts
const EXIT = { ok: 0, failed: 1, noDaemon: 2, timedOut: 3, incomplete: 4, usage: 129 };

function send(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const out = [];
    let stderr = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? null);
  });
}

describe('simple-ipc-send.exe over named pipes', { skip: missing }, () => {
  it('answers ping and a 1 MB response, byte for byte; a request from stdin and from --file', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, (request) => {
      const text = request.toString('latin1');
      if (text === 'ping') return 'pong';
      if (text === 'big') return Buffer.from(bigRow(0).repeat(12000));
      return request; // echo, bytes as they came
    });
    let r = await send([p, 'ping']);
    assert.deepEqual({ code: r.code, stdout: r.stdout.toString(), stderr: r.stderr }, { code: 0, stdout: 'pong', stderr: '' });
    r = await send([p, 'big']);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.equals(Buffer.from(bigRow(0).repeat(12000))));
    const bytes = Buffer.alloc(300000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 8)) & 0xff;
    r = await send([p, '-'], bytes);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(bytes), 'stdin -> pipe -> stdout unchanged (no text mode)');
    const file = path.join(tempDir(t), 'request.bin');
    fs.writeFileSync(file, bytes);
    r = await send([p, `--file=${file}`]);
    assert.ok(r.stdout.equals(bytes));
    // A non-ASCII argument arrives as UTF-8 (the UTF-16 command line).
    r = await send([p, 'é ✓']);
    assert.equal(r.stdout.toString(), 'é ✓');
  });

  it('streams: the first piece is printed before the response ends', async (t) => {
    const p = ipcPath(t);
    let release;
    const released = new Promise((resolve) => (release = resolve));
    await serve(t, p, async (_request, reply) => {
      await reply.write('first piece\n');
      await released;
      return 'rest\n';
    });
    const child = spawn(program, [p, 'go'], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    t.onTestFinished(() => child.kill());
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('first piece\n')) release();
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    assert.equal(out, 'first piece\nrest\n');
  });

  it('exit codes: no daemon 2, timed out 3, incomplete 4, usage 129', async (t) => {
    const none = ipcPath(t, 'none.ipc');
    let r = await send([none, 'ping']);
    assert.equal(r.code, EXIT.noDaemon, r.stderr);
    assert.match(r.stderr, /^error: no daemon is listening at /);

    const p = ipcPath(t);
    await serve(t, p, (request) => (request.toString() === 'hang' ? new Promise(() => {}) : 'pong'));
    r = await send([p, 'hang', '--timeout=0.5']);
    assert.equal(r.code, EXIT.timedOut, r.stderr);

    // A raw pipe server that sends one packet and part of the next, then hangs up.
    const cut = ipcPath(t, 'cut.ipc');
    const server = net.createServer((conn) => {
      let got = '';
      conn.on('error', () => {});
      conn.on('data', (d) => {
        got += d.toString('latin1');
        if (got.endsWith('0000')) conn.end('0008part0009mo');
      });
    });
    await new Promise((resolve) => server.listen(gitPipeName(cut), resolve));
    t.onTestFinished(() => server.close());
    r = await send([cut, 'x']);
    assert.equal(r.code, EXIT.incomplete, r.stderr);
    assert.equal(r.stdout.toString(), 'partmo');

    r = await send([p]);
    assert.equal(r.code, EXIT.usage);
    r = await send(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), /^usage: simple-ipc-send/);
  });
});
