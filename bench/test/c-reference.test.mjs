// Tests of the C reference programs (bench/c), built into a temp dir:
//   node --test bench/test/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { baselineSendCommand, createBaselineServer } from '../net-baseline.mjs';
import { replyChunks } from '../lib/common.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-ct-'));
const bin = (n) => path.join(dir, n);
let server;
const sock = path.join(dir, 'ref.sock');

function raw(p, bytes) {
  return new Promise((resolve) => {
    const s = net.connect(p, () => s.write(bytes));
    const got = [];
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(got)));
  });
}

function runClient(args) {
  return new Promise((resolve, reject) => {
    execFile(bin('ref_client'), args, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message} ${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

before(async () => {
  for (const n of ['ref_server', 'ref_client']) {
    const r = spawnSync('cc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', bin(n), path.join(HERE, '..', 'c', `${n}.c`)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  server = spawn(bin('ref_server'), ['-p', sock, '-t', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => server.stdout.once('data', resolve));
});

after(async () => {
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await exited;
  assert.equal(fs.existsSync(sock), false, 'ref_server removes its socket on SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('ref_server answers the benchmark application (baseline client)', async () => {
  assert.equal((await baselineSendCommand(sock, 'ping')).toString(), 'pong');
  assert.equal((await baselineSendCommand(sock, '')).toString(), 'pong');
  assert.equal((await baselineSendCommand(sock, Buffer.alloc(200_000, 1))).toString(), 'pong');
  const big = await baselineSendCommand(sock, 'big50');
  assert.equal(big.length, 50_000_000);
  assert.equal(big.subarray(0, 30).toString(), 'abcdefghijklmnopqrstuvwxyzabcd');
  assert.equal(big[49_999_999], 97 + (49_999_999 % 26));
  const chunks = await baselineSendCommand(sock, 'chunks');
  assert.ok(chunks.equals(Buffer.concat(replyChunks())));
});

test('ref_server reader rules: end packets, protocol errors, truncation', async () => {
  assert.equal((await raw(sock, '0008ping0001')).toString(), '0008pong0000');
  assert.equal((await raw(sock, '0008ping0002')).toString(), '0008pong0000');
  assert.equal((await raw(sock, '0008PING0004')).toString(), '0008pong0000');
  assert.equal((await raw(sock, '000Aabcdef0000')).toString(), '0008pong0000');
  assert.equal((await raw(sock, '0003')).length, 0);
  assert.equal((await raw(sock, '00x8ping0000')).length, 0);
  assert.equal((await raw(sock, 'fff1' + 'x'.repeat(70000))).length, 0);
  // EOF inside a packet: no response.
  const r = await new Promise((resolve) => {
    const s = net.connect(sock, () => s.end('0010abc'));
    const got = [];
    s.on('data', (d) => got.push(d));
    s.on('close', () => resolve(Buffer.concat(got)));
  });
  assert.equal(r.length, 0);
  // A client that connects and leaves must not hurt the server.
  await new Promise((resolve) => net.connect(sock, function () { this.destroy(); resolve(); }));
  assert.equal((await baselineSendCommand(sock, 'ping')).toString(), 'pong');
});

test('ref_server survives clients that leave mid-reply (no SIGPIPE)', async () => {
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => {
      const s = net.connect(sock, () => s.write('0009big500000'));
      s.once('data', () => {
        s.destroy();
        resolve();
      });
    });
  }
  assert.equal((await baselineSendCommand(sock, 'ping')).toString(), 'pong');
});

test('ref_client: small, bulk both ways, chunks, JSON fields', async () => {
  const small = await runClient(['-p', sock, '-n', '300', '-c', '4', '-w', '10', '-e', '4']);
  assert.equal(small.ok, 300);
  assert.equal(small.errors, 0);
  assert.ok(small.rps > 0 && small.p50_ms > 0 && small.p99_ms >= small.p50_ms);
  const up = await runClient(['-p', sock, '-n', '1', '-B', '50000000', '-e', '4']);
  assert.equal(up.ok, 1);
  assert.equal(up.bytes_out, 50_000_000);
  const down = await runClient(['-p', sock, '-n', '2', '-r', 'big50', '-e', '50000000', '-F']);
  assert.equal(down.ok, 2);
  assert.equal(down.bytes_in, 100_000_000);
  const ch = await runClient(['-p', sock, '-n', '2', '-r', 'chunks', '-e', String(10000 * 81)]);
  assert.equal(ch.ok, 2);
  const bad = await runClient(['-p', sock, '-n', '3', '-r', 'ping', '-e', '5']);
  assert.equal(bad.ok, 0);
  assert.equal(bad.errors, 3);
  assert.match(bad.first_error, /response length 4/);
});

test('ref_client against odd servers: split packets, truncated and bad responses', async () => {
  const p = path.join(dir, 'odd.sock');
  let mode = 'split';
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', async () => {
      if (mode === 'split') {
        // "hello world" as two packets, written a byte at a time.
        for (const ch of '0009hello000a world0000') {
          s.write(ch);
          await new Promise((r) => setTimeout(r, 1));
        }
        s.end();
      } else if (mode === 'truncated') s.end('0009hello');
      else if (mode === 'bad') s.end('0003');
      else if (mode === 'delim') s.end('0007abc0001');
    });
  });
  await new Promise((r) => srv.listen(p, r));
  try {
    let r = await runClient(['-p', p, '-n', '2', '-r', 'x', '-e', '11']);
    assert.equal(r.ok, 2, r.first_error);
    mode = 'truncated';
    r = await runClient(['-p', p, '-n', '1', '-r', 'x']);
    assert.equal(r.errors, 1);
    mode = 'bad';
    r = await runClient(['-p', p, '-n', '1', '-r', 'x']);
    assert.equal(r.errors, 1);
    assert.match(r.first_error, /protocol/i);
    mode = 'delim';
    r = await runClient(['-p', p, '-n', '1', '-r', 'x', '-e', '3']);
    assert.equal(r.ok, 1);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});

test('ref_client against the baseline server', async () => {
  const p = path.join(dir, 'bl.sock');
  const srv = await createBaselineServer(p, (req) => `len ${req.length}`);
  try {
    const r = await runClient(['-p', p, '-n', '200', '-c', '8', '-s', '64:2048']);
    assert.equal(r.ok, 200, r.first_error);
    const t = await runClient(['-p', p, '-n', '1', '-B', '1000000', '-e', String('len 1000000'.length)]);
    assert.equal(t.ok, 1, t.first_error);
  } finally {
    await srv.close();
  }
});
