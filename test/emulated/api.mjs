// API tests for an addon on an emulated CPU (the linux-arm64 prebuild on an
// arm64 Node under qemu-user, scripts/test-steps/65-arm64.sh). qemu-user
// cannot start child processes of the guest architecture, so everything
// runs in this process: node:test run directly (`node api.mjs`), the
// synchronous client in a worker thread. Run by that step with
// PREBUILDS_ONLY=1, SIMPLE_IPC_PREBUILD=<package root> and
// SIPC_EXPECT_ADDON=<the prebuild file that must be the one loaded>.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
const ipc = require(dist);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-emulated-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const socketPath = () => path.join(dir, `s${counter++}.ipc`);

async function withServer(handler, options, body) {
  const p = socketPath();
  const server = await ipc.createServer(p, handler, options);
  try {
    await body(p, server);
  } finally {
    await server.close();
  }
}

test('the loaded addon is the expected prebuild, on this CPU', () => {
  const mapped = new Set();
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const at = line.indexOf('/');
    if (at >= 0 && line.endsWith('.node')) mapped.add(line.slice(at));
  }
  assert.deepEqual([...mapped], [process.env.SIPC_EXPECT_ADDON]);
  assert.equal(`${process.platform}-${process.arch}`, path.basename(path.dirname(process.env.SIPC_EXPECT_ADDON)));
  assert.equal(ipc.MAX_PACKET_PAYLOAD, 65516);
});

test('round trip: text, every byte value, and a 1 MiB request over many packets', async () => {
  await withServer((request) => request, { threads: 2 }, async (p) => {
    assert.equal((await ipc.sendCommand(p, 'ping')).toString(), 'ping');
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.deepEqual(await ipc.sendCommand(p, bytes), bytes);
    const big = crypto.randomBytes(1 << 20);
    const back = await ipc.sendCommand(p, big);
    assert.equal(crypto.createHash('sha256').update(back).digest('hex'), crypto.createHash('sha256').update(big).digest('hex'));
  });
});

test('streamed reply arrives as the handler wrote it', async () => {
  const handler = async (_request, reply) => {
    for (let i = 0; i < 5; i++) await reply.write(`row ${i}\n`);
    return undefined;
  };
  await withServer(handler, {}, async (p) => {
    let text = '';
    for await (const chunk of ipc.streamCommand(p, 'rows')) text += chunk.toString();
    assert.equal(text, 'row 0\nrow 1\nrow 2\nrow 3\nrow 4\n');
  });
});

test('50 concurrent clients each get their own answer', async () => {
  await withServer((request) => `re:${request}`, { threads: 4 }, async (p) => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => ipc.sendCommand(p, `n${i}`)));
    assert.deepEqual(answers.map(String), Array.from({ length: 50 }, (_, i) => `re:n${i}`));
  });
});

test('the handler sees this process as the peer (pid, uid, gid)', async () => {
  let peer;
  const handler = (_request, _reply, ctx) => {
    peer = ctx.peer;
    return 'ok';
  };
  await withServer(handler, {}, async (p) => {
    await ipc.sendCommand(p, 'x');
    assert.deepEqual(peer, { pid: process.pid, uid: process.getuid(), gid: process.getgid() });
  });
});

test('sendCommandSync from a worker thread', async () => {
  await withServer((request) => `sync:${request}`, {}, async (p) => {
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const ipc = require(workerData.dist);
      parentPort.postMessage(ipc.sendCommandSync(workerData.p, 'w', { timeoutMs: 60000 }).toString());`;
    const worker = new Worker(source, { eval: true, workerData: { dist, p } });
    const reply = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.equal(reply, 'sync:w');
    await worker.terminate();
  });
});

test('active state: listening, then not-listening after close (async and sync)', async () => {
  const p = socketPath();
  const server = await ipc.createServer(p, () => 'x');
  assert.equal(await ipc.getActiveState(p), 'listening');
  assert.equal(ipc.getActiveStateSync(p), 'listening');
  await server.close();
  assert.equal(fs.existsSync(p), false);
  // not-listening, as Git says for a missing path (lstat's errno decides:
  // the glibc 2.28 prebuilds need scripts/prebuild/glibc_compat.cc for it).
  assert.equal(await ipc.getActiveState(p), 'not-listening');
  assert.equal(ipc.getActiveStateSync(p), 'not-listening');
});

test('errors: ENOENT for no socket; a request over maxRequestBytes is refused and reported', async () => {
  await assert.rejects(ipc.sendCommand(path.join(dir, 'none.ipc'), 'x'), { code: 'ENOENT', state: 'path-not-found' });
  assert.throws(() => ipc.sendCommandSync(path.join(dir, 'none.ipc'), 'x'), { code: 'ENOENT' });
  await withServer((request) => `len:${request.length}`, { maxRequestBytes: 1000 }, async (p, server) => {
    const reported = new Promise((resolve) => server.once('clientError', resolve));
    assert.equal((await ipc.sendCommand(p, Buffer.alloc(1000, 0x61))).toString(), 'len:1000');
    await assert.rejects(ipc.sendCommand(p, Buffer.alloc(1001, 0x61)), (e) => typeof e.code === 'string');
    assert.equal((await reported).code, 'ERR_IPC_REQUEST_TOO_LARGE');
    assert.equal((await ipc.sendCommand(p, 'still')).toString(), 'len:5');
  });
});
