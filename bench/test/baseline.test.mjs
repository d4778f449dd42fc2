// Tests of the net baseline (bench/net-baseline.mjs): node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  PktLineParser,
  encodeMessage,
  createBaselineServer,
  baselineSendCommand,
  MAX_PAYLOAD,
} from '../net-baseline.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-bl-'));
let n = 0;
const sockPath = () => path.join(dir, `t${n++}.sock`);
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const framed = (data) => Buffer.concat(encodeMessage(data));

function parseAll(bytes, splits) {
  const p = new PktLineParser();
  let prev = 0;
  for (const s of [...splits, bytes.length]) {
    const used = p.push(bytes.subarray(prev, s));
    if (used >= 0) return { msg: p.message(), used: prev + used, end: p.endPacket };
    prev = s;
  }
  return null;
}

test('writer: packet sizes, lowercase hex, flush', () => {
  assert.equal(framed('').toString(), '0000');
  assert.equal(framed('ping').toString(), '0008ping0000');
  const big = Buffer.alloc(MAX_PAYLOAD * 2 + 3, 'x');
  const f = framed(big);
  assert.equal(f.subarray(0, 4).toString(), 'fff0');
  assert.equal(f.subarray(4 + MAX_PAYLOAD, 8 + MAX_PAYLOAD).toString(), 'fff0');
  assert.equal(f.subarray(8 + 2 * MAX_PAYLOAD, 12 + 2 * MAX_PAYLOAD).toString(), '0007');
  assert.equal(f.subarray(-4).toString(), '0000');
  assert.equal(f.length, big.length + 4 * 3 + 4);
});

test('parser: every split position of a small message', () => {
  const bytes = Buffer.concat([Buffer.from('0009hello0006ab0000')]);
  for (let a = 0; a <= bytes.length; a++) {
    for (let b = a; b <= bytes.length; b++) {
      const r = parseAll(bytes, [a, b]);
      assert.equal(r.msg.toString(), 'helloab');
      assert.equal(r.used, bytes.length);
    }
  }
});

test('parser: big message in odd-sized reads', () => {
  const big = Buffer.alloc(1_000_003);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  const bytes = framed(big);
  const splits = [];
  for (let s = 1; s < bytes.length; s += 4093) splits.push(s);
  const r = parseAll(bytes, splits);
  assert.ok(r.msg.equals(big));
});

test('parser: end packets 0001 0002 0004, uppercase hex', () => {
  for (const end of ['0001', '0002', '0004']) {
    const r = parseAll(Buffer.from(`0007abc${end}trailing`), []);
    assert.equal(r.msg.toString(), 'abc');
    assert.equal(r.end, end);
    assert.equal(r.used, 11);
  }
  const r = parseAll(Buffer.from('000Aabcdef0000'), []);
  assert.equal(r.msg.toString(), 'abcdef');
});

test('parser: protocol errors', () => {
  for (const bad of ['0003', '00g5', 'zzzz', 'fff1', 'ffff', ' 005']) {
    assert.throws(() => new PktLineParser().push(Buffer.from(bad + 'x'.repeat(10))), { code: 'EPROTO' }, bad);
  }
  // Largest legal packet is accepted.
  const p = new PktLineParser();
  assert.equal(p.push(Buffer.concat([Buffer.from('fff0'), Buffer.alloc(65516), Buffer.from('0000')])), 65524);
});

test('server and client: round trips, empty, big both ways, streamed', async () => {
  const p = sockPath();
  fs.writeFileSync(p + '.unrelated', 'x'); // not touched
  const big = Buffer.alloc(3_000_000, 'b');
  const srv = await createBaselineServer(p, (req) => {
    const s = req.toString('latin1');
    if (s === 'ping') return 'pong';
    if (s === 'empty') return '';
    if (s === 'big') return big;
    if (s === 'chunks') return Array.from({ length: 1000 }, (_, i) => `line ${i}\n`);
    if (s === 'async') {
      return (async function* () {
        for (let i = 0; i < 3; i++) yield Buffer.from(`a${i}`);
      })();
    }
    if (s === 'throw') throw new Error('boom');
    if (s === 'reject') return Promise.reject(new Error('boom'));
    return `len ${req.length}`;
  });
  try {
    assert.equal((await baselineSendCommand(p, 'ping')).toString(), 'pong');
    assert.equal((await baselineSendCommand(p, 'empty')).length, 0);
    assert.equal((await baselineSendCommand(p, '')).toString(), 'len 0');
    assert.ok((await baselineSendCommand(p, 'big')).equals(big));
    assert.equal((await baselineSendCommand(p, big)).toString(), `len ${big.length}`);
    const chunks = (await baselineSendCommand(p, 'chunks')).toString();
    assert.equal(chunks, Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join(''));
    assert.equal((await baselineSendCommand(p, 'async')).toString(), 'a0a1a2');
    await assert.rejects(baselineSendCommand(p, 'throw'));
    await assert.rejects(baselineSendCommand(p, 'reject'));
    const many = await Promise.all(Array.from({ length: 200 }, () => baselineSendCommand(p, 'ping')));
    assert.ok(many.every((b) => b.toString() === 'pong'));
  } finally {
    await srv.close();
  }
  assert.equal(fs.existsSync(p), false, 'socket removed on close');
  assert.equal(fs.existsSync(p + '.unrelated'), true);
});

test('server drops truncated and malformed requests; client rejects truncated responses', async () => {
  const p = sockPath();
  let calls = 0;
  const srv = await createBaselineServer(p, () => {
    calls++;
    return 'pong';
  });
  const raw = (bytes, halfClose) =>
    new Promise((resolve) => {
      const s = net.connect(p, () => (halfClose ? s.end(bytes) : s.write(bytes)));
      const got = [];
      s.on('data', (d) => got.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(got).toString()));
    });
  try {
    assert.equal(await raw('0008pi', true), '');
    assert.equal(await raw('0003', false), '');
    assert.equal(await raw('fff5', false), '');
    assert.equal(await raw('0008ping0000', false), '0008pong0000');
    assert.equal(calls, 1);
  } finally {
    await srv.close();
  }
  // A server that closes before its flush.
  const p2 = sockPath();
  const bad = net.createServer((s) => s.once('data', () => s.end('0008pong')));
  await new Promise((r) => bad.listen(p2, r));
  try {
    await assert.rejects(baselineSendCommand(p2, 'ping'), /flush/);
  } finally {
    await new Promise((r) => bad.close(r));
  }
});

test('a stale socket file left by a dead process is replaced', async () => {
  const p = sockPath();
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.exit(0))`]);
  assert.equal(r.status, 0);
  assert.ok(fs.lstatSync(p).isSocket(), 'stale socket left behind');
  const b = await createBaselineServer(p, () => 'b');
  try {
    assert.equal((await baselineSendCommand(p, 'x')).toString(), 'b');
  } finally {
    await b.close();
  }
});
