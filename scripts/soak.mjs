#!/usr/bin/env node
// Soak: a server and its clients in this process under a steady mixed load
// (plain, large, streamed and failing requests, aborted clients, malformed
// requests), for a bounded time. Checks that afterwards, and after the
// server is closed, the process's descriptor and thread counts are back
// where they started and its RSS is flat.
//
//   npm run soak -- --seconds=60        (default 30 s, and at least 20000 requests)
//   options: --seconds=N --min-requests=N --concurrency=N --rss-slack-mb=N
// Exit code 0 when every check passes; the last line is "N passed, M failed".
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const { createServer, sendCommand, streamCommand } = require('../dist/index.js');
const { bigResponseText } = require('../dist/test-app.js');

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : Number(a.slice(name.length + 3));
};
const seconds = arg('seconds', 30);
const minRequests = arg('min-requests', 20000);
const concurrency = arg('concurrency', 32);
const rssSlackMb = arg('rss-slack-mb', 40);
const maxSeconds = Math.max(seconds * 4, seconds + 120); // hard bound even if slow

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const threadCount = () => fs.readdirSync('/proc/self/task').length;
const rssMb = () => process.memoryUsage().rss / 1048576;
const gc = () => {
  if (globalThis.gc) for (let i = 0; i < 3; i++) globalThis.gc();
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-soak-'));
const socketPath = path.join(dir, 'soak.ipc');

const handler = async (request, reply) => {
  const command = request.toString('latin1');
  if (command === 'ping') return 'pong';
  if (command === 'big') return bigResponseText();
  if (command === 'stream') {
    for (let i = 0; i < 20; i++) await reply.write(`row ${i}\n`);
    return 'end\n';
  }
  if (command === 'throw') throw new Error('soak: handler failure');
  if (command === 'slow') {
    await sleep(5);
    return 'slow';
  }
  return request; // echo
};

const counts = { ok: 0, expectedFailures: 0, unexpected: 0 };
const unexpected = [];
const fail = (what) => {
  counts.unexpected++;
  if (unexpected.length < 10) unexpected.push(what);
};

// Raw bytes: a malformed request, answered by nothing (a clientError).
function rawBad() {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath, () => s.end('00g0bad'));
    s.on('data', () => fail('response to a malformed request'));
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

const echo = Buffer.alloc(100 * 1024, 0x65);
async function one(i) {
  const kind = i % 20;
  try {
    if (kind < 10) {
      if ((await sendCommand(socketPath, 'ping')).toString() !== 'pong') fail('ping');
    } else if (kind === 10) {
      if ((await sendCommand(socketPath, 'big')).length !== 10000 * 81) fail('big');
    } else if (kind === 11) {
      let n = 0;
      for await (const c of streamCommand(socketPath, 'stream')) n += c.length;
      if (n !== 'end\n'.length + Array.from({ length: 20 }, (_, r) => `row ${r}\n`.length).reduce((a, b) => a + b)) {
        fail('stream');
      }
    } else if (kind === 12) {
      if (!(await sendCommand(socketPath, echo)).equals(echo)) fail('echo');
    } else if (kind === 13) {
      await sendCommand(socketPath, 'throw').then(
        () => fail('throw answered'),
        (e) => (e.code === 'ERR_IPC_INCOMPLETE_RESPONSE' ? counts.expectedFailures++ : fail(`throw: ${e.code}`)),
      );
      return;
    } else if (kind === 14) {
      const controller = new AbortController();
      const p = sendCommand(socketPath, 'slow', { signal: controller.signal });
      setTimeout(() => controller.abort(), 1);
      await p.then(
        () => counts.ok++,
        (e) => (e.name === 'AbortError' ? counts.expectedFailures++ : fail(`abort: ${e.code}`)),
      );
      return;
    } else if (kind === 15) {
      await rawBad();
      counts.expectedFailures++;
      return;
    } else {
      if ((await sendCommand(socketPath, 'slow')).toString() !== 'slow') fail('slow');
    }
    counts.ok++;
  } catch (e) {
    fail(`${kind}: ${e.code ?? e.message}`);
  }
}

async function load(server, until, atLeast, onProgress) {
  let next = 0;
  const hardStop = Date.now() + maxSeconds * 1000;
  const worker = async () => {
    while ((Date.now() < until || next < atLeast) && Date.now() < hardStop) {
      await one(next++);
      if (next % 1000 === 0) onProgress(next);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return next;
}

async function waitBack(fn, target, ms = 5000) {
  const end = Date.now() + ms;
  while (fn() !== target && Date.now() < end) await sleep(20);
  return fn();
}

// Warm-up: the same load for a quarter of the time (at least 5000
// requests) in one whole server lifetime, so that the addon, the client
// I/O thread, V8's heap and code and the allocator's per-thread arenas
// reach their working size before anything is measured.
{
  const server = await createServer(socketPath, handler, { threads: 8 });
  server.on('handlerError', () => {});
  server.on('clientError', () => {});
  await load(server, Date.now() + (seconds * 1000) / 4, 5000, () => {});
  await server.close();
}
counts.ok = counts.expectedFailures = counts.unexpected = 0;
unexpected.length = 0;
gc();
await sleep(200);
const before = { fds: fdCount(), threads: threadCount(), rss: rssMb() };

const started = Date.now();
const server = await createServer(socketPath, handler, { threads: 8 });
let clientErrors = 0;
let handlerErrors = 0;
server.on('handlerError', () => handlerErrors++);
server.on('clientError', () => clientErrors++);
const during = { fds: fdCount(), threads: threadCount() };

// RSS once the load has settled (a quarter of the way), and at the end;
// samples along the way show a trend, if any.
let rssSettled = null;
const samples = [];
let nextSample = started;
const total = Math.max(minRequests, 1);
const requests = await load(server, started + seconds * 1000, minRequests, (n) => {
  if (rssSettled === null && (n >= total / 4 || Date.now() - started > (seconds * 1000) / 4)) {
    gc();
    rssSettled = rssMb();
  }
  if (Date.now() >= nextSample) {
    samples.push(`${Math.round((Date.now() - started) / 1000)}s:${rssMb().toFixed(0)}`);
    nextSample = Date.now() + (seconds * 1000) / 10;
  }
});
const elapsed = (Date.now() - started) / 1000;
gc();
const rssEnd = rssMb();
await server.close();
gc();
await sleep(100);
const after = { fds: await waitBack(fdCount, before.fds), threads: await waitBack(threadCount, before.threads), rss: rssMb() };
fs.rmSync(dir, { recursive: true, force: true });

const f = (x) => x.toFixed(1);
console.log(`soak: ${requests} requests in ${f(elapsed)} s (${Math.round(requests / elapsed)}/s), concurrency ${concurrency}`);
console.log(`  ok ${counts.ok}, expected failures ${counts.expectedFailures} (handler errors ${handlerErrors}, client errors ${clientErrors}), unexpected ${counts.unexpected}`);
console.log(`  descriptors: before ${before.fds}, while serving ${during.fds}, after close ${after.fds}`);
console.log(`  threads:     before ${before.threads}, while serving ${during.threads}, after close ${after.threads}`);
console.log(`  RSS (MB):    before ${f(before.rss)}, settled ${f(rssSettled ?? rssEnd)}, end ${f(rssEnd)}, after close ${f(after.rss)}${globalThis.gc ? '' : ' (no --expose-gc)'}`);
console.log(`  RSS samples under load (MB): ${samples.join(' ')}`);
for (const u of unexpected) console.log(`  unexpected: ${u}`);

const checks = [
  ['at least the minimum number of requests', requests >= minRequests],
  ['no unexpected result', counts.unexpected === 0],
  ['descriptors back after close', after.fds === before.fds],
  ['threads back after close', after.threads === before.threads],
  [`RSS flat under load (end - settled < ${rssSlackMb} MB)`, rssEnd - (rssSettled ?? rssEnd) < rssSlackMb],
  [`RSS after close within ${rssSlackMb} MB of before`, after.rss - before.rss < rssSlackMb],
];
let passed = 0;
for (const [name, ok] of checks) {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name}`);
  if (ok) passed++;
}
console.log(`${passed} passed, ${checks.length - passed} failed`);
process.exitCode = passed === checks.length ? 0 : 1;
