// A benchmark client in its own process; prints one JSON result line with
// the same fields as bench/c/ref_client.c.
//   node bench/lib/client-proc.mjs '<json spec>'
// spec: { impl: 'ours'|'ours-sync'|'baseline', path, n, concurrency, warmup,
//         durationS?, timeoutMs?, minSize?, maxSize?, request?, bulkSize?,
//         expectLen? }
// Each request is a new connection (that is the protocol). Latency is from
// the call to the resolved response (the whole response in one Buffer).
import { baselineSendCommand } from '../net-baseline.mjs';
import { loadOurs, percentile, requestPayload, requestSizes } from './common.mjs';

const spec = JSON.parse(process.argv[2]);
const {
  impl,
  path,
  n = 1000,
  concurrency = 1,
  warmup = 0,
  durationS = 0,
  timeoutMs = 0,
  minSize = 64,
  maxSize = 2048,
  request = null,
  bulkSize = 0,
  expectLen = -1,
} = spec;

function withTimeout(promise, ms) {
  if (!ms) return promise;
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`timed out after ${ms} ms`);
      err.code = 'ETIMEDOUT';
      reject(err);
    }, ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

let send;
if (impl === 'baseline') {
  send = (req) => baselineSendCommand(path, req, { timeoutMs });
} else if (impl === 'ours' || impl === 'ours-sync') {
  const { lib, reason } = await loadOurs();
  if (!lib) {
    console.error(`client-proc: our library is not available: ${reason}`);
    process.exit(3);
  }
  if (impl === 'ours-sync') {
    // The synchronous client blocks this process for each exchange: it is
    // measured at concurrency 1 only. Its own timeout stands in for the
    // outside one (a blocked thread cannot run a timer).
    const options = timeoutMs ? { timeoutMs } : undefined;
    send = async (req) => lib.sendCommandSync(path, req, options);
  } else {
    // The library's own options are left at their defaults; the timeout is
    // applied from outside so every client is measured the same way.
    send = (req) => withTimeout(lib.sendCommand(path, req), timeoutMs);
  }
} else {
  console.error(`client-proc: unknown implementation ${impl}`);
  process.exit(2);
}

// Requests, built before timing.
let requestFor;
if (request != null) {
  const r = Buffer.from(request);
  requestFor = () => r;
} else if (bulkSize) {
  const r = requestPayload(bulkSize);
  requestFor = () => r;
} else {
  const sizes = requestSizes(minSize, maxSize);
  const payload = requestPayload(maxSize);
  const views = Array.from({ length: maxSize + 1 }, (_, s) => payload.subarray(0, s));
  requestFor = (i) => views[sizes[i % sizes.length]];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const stats = { lat: [], ok: 0, errors: 0, timeouts: 0, bytesOut: 0, bytesIn: 0, firstError: null };

async function phase(total, seconds, record) {
  let next = 0;
  const deadline = seconds ? performance.now() + seconds * 1000 : 0;
  const worker = async () => {
    for (;;) {
      if (deadline ? performance.now() >= deadline : next >= total) return;
      const i = next++;
      const req = requestFor(i);
      const t0 = performance.now();
      let res;
      let error = null;
      try {
        res = await send(req);
        if (expectLen >= 0 && res.length !== expectLen) {
          error = new Error(`response length ${res.length}, expected ${expectLen}`);
        }
      } catch (err) {
        error = err;
      }
      const t1 = performance.now();
      if (!record) continue;
      if (!error) {
        stats.ok++;
        stats.lat.push(t1 - t0);
        stats.bytesOut += req.length;
        stats.bytesIn += res.length;
      } else {
        if (error.code === 'ETIMEDOUT') stats.timeouts++;
        else stats.errors++;
        stats.firstError ??= `${error.code ?? ''} ${error.message}`.trim();
        if (deadline) await sleep(10); // do not spin on a server that refuses
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (performance.now() - t0) / 1000;
}

if (warmup > 0) await phase(warmup, 0, false);
const seconds = await phase(n, durationS, true);
const lat = stats.lat.sort((a, b) => a - b);
const sum = lat.reduce((a, b) => a + b, 0);
const out = {
  impl,
  requests: stats.ok + stats.errors + stats.timeouts,
  ok: stats.ok,
  errors: stats.errors,
  timeouts: stats.timeouts,
  seconds,
  rps: seconds > 0 ? stats.ok / seconds : 0,
  p50_ms: percentile(lat, 0.5),
  p99_ms: percentile(lat, 0.99),
  mean_ms: lat.length ? sum / lat.length : null,
  max_ms: lat.length ? lat[lat.length - 1] : null,
  bytes_out: stats.bytesOut,
  bytes_in: stats.bytesIn,
  mbps: seconds > 0 ? (stats.bytesIn + stats.bytesOut) / seconds / 1e6 : 0,
  first_error: stats.firstError,
};
process.stdout.write(JSON.stringify(out) + '\n');
// Timed-out calls of a library may still be pending; do not wait for them.
process.exit(0);
