// Shared pieces of the benchmark processes: the benchmark application
// (what every server answers), request sizes, statistics, and loading our
// library from ../../dist when it has been built.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const BIG_REPLY_SIZE = 50_000_000;
export const CHUNK_COUNT = 10_000;
export const CHUNK_SIZE = 81; // "big: " + 75 digits + "\n", as the test app's lines
export const PONG = Buffer.from('pong');
export const BIG50 = Buffer.from('big50');
export const CHUNKS = Buffer.from('chunks');
export const CHUNKSQ = Buffer.from('chunksq');
// The server's diagnostics channels (the row that measures their cost).
export const DIAGNOSTICS_CHANNELS = ['simple-ipc:server:request', 'simple-ipc:server:response'];

// Filled with 'a'..'z' like the C reference. Built on first use only, so it
// does not count in the resident size of a server that never sends it.
let big = null;
export function bigReply() {
  if (!big) {
    big = Buffer.allocUnsafe(BIG_REPLY_SIZE);
    const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    for (let i = 0; i < BIG_REPLY_SIZE; i += 26) alphabet.copy(big, i, 0, Math.min(26, BIG_REPLY_SIZE - i));
  }
  return big;
}

let chunks = null;
export function replyChunks() {
  if (!chunks) {
    chunks = new Array(CHUNK_COUNT);
    for (let i = 0; i < CHUNK_COUNT; i++) chunks[i] = Buffer.from(`big: ${String(i).padStart(75, '0')}\n`);
  }
  return chunks;
}

// Request i of the small-request scenarios has size sizes[i % 65536]; the
// same xorshift32 sequence as bench/c/ref_client.c.
export function requestSizes(min, max, count = 65536) {
  const out = new Uint32Array(count);
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = min + (x % (max - min + 1));
  }
  return out;
}

export function requestPayload(size) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26);
  return b;
}

// Nearest-rank percentile of a sorted array (same rule as the C client).
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[k];
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export const DIST_CJS = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
export const DIST_ESM = fileURLToPath(new URL('../../dist/index.mjs', import.meta.url));

// Our library, or null with the reason when dist/ is not built (yet).
export async function loadOurs() {
  if (!fs.existsSync(DIST_CJS)) {
    return { lib: null, reason: `${DIST_CJS} does not exist (run npm install / npm run build)` };
  }
  let lib;
  try {
    lib = fs.existsSync(DIST_ESM) ? await import(DIST_ESM) : createRequire(import.meta.url)(DIST_CJS);
  } catch (err) {
    return { lib: null, reason: `loading ${DIST_ESM} failed: ${err.message}` };
  }
  for (const name of ['createServer', 'sendCommand']) {
    if (typeof lib[name] !== 'function') return { lib: null, reason: `dist does not export ${name}()` };
  }
  return { lib, reason: null };
}

// Every process the benchmarks start runs without NODE_EXTRA_CA_CERTS:
// when set (as on some CI machines), each `node` start spends about 60 ms
// parsing certificates, a cost that is not ours and that users do not
// pay. `note` says whether it was set and removed.
export function benchEnv(env = process.env) {
  const clean = { ...env };
  const wasSet = clean.NODE_EXTRA_CA_CERTS !== undefined;
  delete clean.NODE_EXTRA_CA_CERTS;
  return {
    env: clean,
    note: wasSet
      ? 'NODE_EXTRA_CA_CERTS was set in the environment: removed for every process the bench starts'
      : 'NODE_EXTRA_CA_CERTS was not set',
  };
}

// Builds bench/c (the C reference server and client) into `buildDir`.
export function compileC(buildDir) {
  fs.mkdirSync(buildDir, { recursive: true });
  const cDir = fileURLToPath(new URL('../c/', import.meta.url));
  const warnings = [];
  for (const name of ['ref_server', 'ref_client']) {
    const args = ['-O2', '-pthread', '-Wall', '-Wextra', '-o', `${buildDir}/${name}`, `${cDir}${name}.c`];
    const r = spawnSync('cc', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc ${args.join(' ')} failed:\n${r.stderr || r.error}`);
    if (r.stderr.trim()) warnings.push(r.stderr.trim());
  }
  return warnings;
}

// One line on how busy the machine is (the figures of a loaded machine
// are noisy; counts per request much less so).
export function loadNote() {
  const [a, b, c] = os.loadavg();
  return `load average ${a.toFixed(2)} ${b.toFixed(2)} ${c.toFixed(2)} on ${os.cpus().length} cores`;
}

// Stops a benchmark server process (SIGTERM, SIGKILL after 4 s), waits for
// it to exit and removes its socket file.
export async function stopProcess(child, sockPath) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 4000);
    await exited;
    clearTimeout(t);
  }
  fs.rmSync(sockPath, { force: true });
}
