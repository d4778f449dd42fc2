// Many slow clients against one server: each connects, starts a request
// and then sends one more byte about every `intervalMs` (a 24-byte request
// at one byte a second never finishes during a measurement).
//   node bench/lib/slow-clients.mjs <socket path> <count> [intervalMs]
// Prints one JSON line when every connection has been tried:
//   {"connected":N,"failed":M,"first_error":...}
// and on SIGTERM/SIGINT (or stdin closing) a last line
//   {"dropped":K} (connections the server closed while they were held)
// then closes them all and exits. Always raw node:net: the point is bytes
// trickling in, which no request/response API can produce.
import net from 'node:net';

const [path, countArg, intervalArg] = process.argv.slice(2);
const count = Number(countArg) || 1000;
const intervalMs = Number(intervalArg) || 1000;
const REQUEST = Buffer.from('0014slowslowslowslow0000'); // never completes in time
const PARALLEL_CONNECTS = 64;

const sockets = [];
let dropped = 0;
let failed = 0;
let firstError = null;
let stopping = false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connectOnce() {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

async function openOne() {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const s = await connectOnce();
      s.sent = 1;
      s.write(REQUEST.subarray(0, 1)); // the server sees a started request
      s.on('error', () => {});
      s.on('close', () => {
        if (!stopping) dropped++;
      });
      s.on('data', () => {}); // a reply would mean the server misread; ignore
      sockets.push(s);
      return;
    } catch (err) {
      if ((err.code === 'EAGAIN' || err.code === 'ECONNREFUSED') && Date.now() < deadline) {
        await sleep(5); // backlog full: try again shortly
        continue;
      }
      failed++;
      firstError ??= `${err.code} ${err.message}`;
      return;
    }
  }
}

let next = 0;
await Promise.all(
  Array.from({ length: PARALLEL_CONNECTS }, async () => {
    while (next < count) {
      next++;
      await openOne();
    }
  }),
);
process.stdout.write(JSON.stringify({ connected: sockets.length, failed, first_error: firstError }) + '\n');

// Trickle: a tick every 10 ms serves a slice of the clients, so each one
// sends a byte every intervalMs and the load is spread evenly.
const ticks = Math.max(1, Math.round(intervalMs / 10));
let tick = 0;
const timer = setInterval(() => {
  for (let i = tick % ticks; i < sockets.length; i += ticks) {
    const s = sockets[i];
    if (s.destroyed || s.sent >= REQUEST.length - 4) continue; // never send the flush
    s.write(REQUEST.subarray(s.sent, s.sent + 1));
    s.sent++;
  }
  tick++;
}, 10);

const stop = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  process.stdout.write(JSON.stringify({ dropped }) + '\n');
  for (const s of sockets) s.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
