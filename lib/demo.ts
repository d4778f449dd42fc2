// `npm start`: a ten-second tour. Starts the test daemon (`simple-ipc
// run-daemon`) on a temporary socket, talks to it with the library's
// clients, measures a small stress run and a bulk transfer, stops the
// daemon and removes everything it made.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { getActiveState, sendCommand, streamCommand } from './index.js';
import { bigResponseText } from './test-app.js';

const DAEMON_THREADS = 8;
const SENDERS = 8;
const REQUESTS_PER_SENDER = 1000;
const BALLAST = 64;
const BULK_BYTES = 50 * 1000 * 1000;

const out = process.stdout;
const tty = out.isTTY === true;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[22m` : s);

function ms(ns: bigint | number): string {
  const v = Number(ns) / 1e6;
  return v < 10 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

function since(start: bigint): bigint {
  return process.hrtime.bigint() - start;
}

function grouped(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function sendbytes(byte: string, count: number): Buffer {
  const request = Buffer.alloc(10 + count, byte);
  request.write('sendbytes ', 0, 'latin1');
  return request;
}

function expectedVerdict(byte: string, count: number): string {
  return `rcvd:${byte}${String(count).padStart(8, '0')}\n`;
}

let daemon: ChildProcess | null = null;
let tmp: string | null = null;

/** Kills the daemon if it still runs and removes the temporary directory. */
function cleanUp(): void {
  if (daemon !== null && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  if (tmp !== null) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = null;
}

async function startDaemon(socket: string): Promise<number> {
  const cli = path.join(__dirname, 'cli.js');
  const started = process.hrtime.bigint();
  let stderr = '';
  daemon = spawn(process.execPath, [cli, 'run-daemon', `--name=${socket}`, `--threads=${DAEMON_THREADS}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  daemon.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 15000;
  while ((await getActiveState(socket)) !== 'listening') {
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error(`the daemon exited: ${stderr.trim()}`);
    if (Date.now() > deadline) throw new Error('the daemon did not come up within 15 s');
    await sleep(5);
  }
  return Number(since(started)) / 1e6;
}

async function stopDaemon(socket: string): Promise<void> {
  const child = daemon!;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  await sendCommand(socket, 'quit');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
}

function progress(done: number, total: number, errors: number, final: boolean): void {
  const width = 32;
  const filled = Math.round((done / total) * width);
  const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
  const line = `  [${bar}] ${grouped(done)}/${grouped(total)} requests, ${errors} errors`;
  if (tty) out.write(`\r${line}${final ? '\n' : ''}`);
  else if (final) out.write(`${line}\n`);
}

async function stress(socket: string): Promise<{ perSecond: number; p50: number; p99: number; errors: number }> {
  const total = SENDERS * REQUESTS_PER_SENDER;
  const latencies = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let lastDraw = 0;
  const started = process.hrtime.bigint();
  const sender = async (k: number) => {
    const byte = String.fromCharCode(65 + (k % 26));
    for (let i = 0; i < REQUESTS_PER_SENDER; i++) {
      const request = sendbytes(byte, BALLAST + i);
      const t0 = process.hrtime.bigint();
      try {
        const response = await sendCommand(socket, request);
        if (response.toString('latin1') !== expectedVerdict(byte, BALLAST + i)) errors++;
      } catch {
        errors++;
      }
      latencies[done++] = Number(since(t0));
      if (tty && Date.now() - lastDraw > 80) {
        lastDraw = Date.now();
        progress(done, total, errors, false);
      }
    }
  };
  await Promise.all(Array.from({ length: SENDERS }, (_, k) => sender(k)));
  const elapsed = Number(since(started)) / 1e9;
  progress(done, total, errors, true);
  latencies.sort();
  const pick = (q: number) => latencies[Math.min(total - 1, Math.floor(q * total))]!;
  return { perSecond: total / elapsed, p50: pick(0.5), p99: pick(0.99), errors };
}

async function main(): Promise<void> {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'simple-ipc-demo-'));
  const socket = path.join(tmp, 'demo.ipc');

  out.write(`${bold('simple-ipc demo')}: Git's simple-ipc (pkt-line over a Unix domain socket) in Node.js\n\n`);
  const upMs = await startDaemon(socket);
  out.write(`$ ${bold(`simple-ipc run-daemon --threads=${DAEMON_THREADS} --name=${socket}`)} &\n`);
  out.write(`  ${dim(`the test daemon (pid ${daemon!.pid}) listens after ${upMs.toFixed(0)} ms`)}\n\n`);

  // send --token=ping
  let t0 = process.hrtime.bigint();
  const pong = await sendCommand(socket, 'ping');
  const pingTime = since(t0);
  out.write(`$ ${bold('simple-ipc send --token=ping')}\n${pong.toString()}  ${dim(`(${ms(pingTime)}, a fresh connection per request)`)}\n\n`);

  // big: one 810 KB response written as one chunk.
  const expectedBig = bigResponseText();
  t0 = process.hrtime.bigint();
  const big = await sendCommand(socket, 'big');
  const bigTime = since(t0);
  const bigOk = big.toString('latin1') === expectedBig;
  out.write(`$ ${bold('simple-ipc send --token=big')}\n`);
  out.write(`  10,000 rows, ${grouped(big.length)} bytes in ${ms(bigTime)} ${bigOk ? '(all rows correct)' : '(WRONG CONTENT)'}\n`);
  out.write(`  ${dim(big.subarray(0, 80).toString().trimEnd())}\n  ${dim('...')}\n  ${dim(big.subarray(big.length - 81).toString().trimEnd())}\n\n`);

  // chunk: the same rows, written one by one and streamed to us as they come.
  t0 = process.hrtime.bigint();
  let firstChunk = 0n;
  const pieces: Buffer[] = [];
  for await (const piece of streamCommand(socket, 'chunk')) {
    if (pieces.length === 0) firstChunk = since(t0);
    pieces.push(piece);
  }
  const chunkTime = since(t0);
  const chunk = Buffer.concat(pieces);
  const chunkOk = chunk.toString('latin1') === expectedBig;
  out.write(`$ ${bold('simple-ipc send --token=chunk')}\n`);
  out.write(
    `  10,000 rows written one at a time: first row after ${ms(firstChunk)}, all ${grouped(chunk.length)} bytes after ${ms(chunkTime)} ${chunkOk ? '(all rows correct)' : '(WRONG CONTENT)'}\n\n`,
  );

  // multiple: concurrent senders, each a fresh connection per request.
  out.write(`$ ${bold(`simple-ipc multiple --threads=${SENDERS} --batchsize=${REQUESTS_PER_SENDER} --bytecount=${BALLAST}`)}\n`);
  const s = await stress(socket);
  out.write('\n');

  // sendbytes: one 50 MB request.
  t0 = process.hrtime.bigint();
  const bulk = await sendCommand(socket, sendbytes('x', BULK_BYTES));
  const bulkSeconds = Number(since(t0)) / 1e9;
  const bulkOk = bulk.toString('latin1') === expectedVerdict('x', BULK_BYTES);
  out.write(`$ ${bold(`simple-ipc sendbytes --bytecount=${BULK_BYTES}`)}\n`);
  out.write(`sent:x${BULK_BYTES} ${bulk.toString('latin1').trimEnd()}\n\n`);

  const rows: Array<[string, string]> = [
    ['requests/s', grouped(s.perSecond)],
    ['p50 latency', ms(s.p50)],
    ['p99 latency', ms(s.p99)],
    ['sendbytes 50 MB', `${grouped(BULK_BYTES / 1e6 / bulkSeconds)} MB/s`],
  ];
  out.write(`  ${bold('measured')} ${dim(`(${SENDERS} concurrent clients x ${REQUESTS_PER_SENDER} requests; ${os.cpus().length} CPUs)`)}\n`);
  for (const [label, value] of rows) out.write(`  ${label.padEnd(18)}${value.padStart(12)}\n`);
  out.write('\n');

  // stop-daemon; the daemon removes its socket, we remove the directory.
  t0 = process.hrtime.bigint();
  await stopDaemon(socket);
  const gone = !fs.existsSync(socket) && !fs.existsSync(`${socket}.lock`);
  out.write(`$ ${bold('simple-ipc stop-daemon')}\n`);
  out.write(`  ${dim(`stopped in ${ms(since(t0))}; socket file ${gone ? 'removed' : 'STILL THERE'}; temporary directory removed`)}\n`);
  cleanUp();

  const failures = s.errors + (bigOk ? 0 : 1) + (chunkOk ? 0 : 1) + (bulkOk ? 0 : 1) + (gone ? 0 : 1);
  if (failures > 0) {
    out.write(`\n${failures} check(s) failed\n`);
    process.exitCode = 1;
  } else {
    out.write(`\nTry it yourself: npx simple-ipc --help\n`);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.kill(process.pid, signal);
  });
}

main().catch((err: unknown) => {
  if (tty) out.write('\n');
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  cleanUp();
  process.exitCode = 1;
});
