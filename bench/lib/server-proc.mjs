// A benchmark server in its own process, so the harness can read its
// resident size from /proc/<pid>/status.
//   node bench/lib/server-proc.mjs <ours|ours+dc|baseline> <socket path> [threads]
// ours+dc: ours with a subscriber on the diagnostics channels
// simple-ipc:server:request and simple-ipc:server:response (what
// publishing costs when somebody listens).
// Prints "ready" on stdout once listening. SIGTERM or SIGINT: close, exit.
//
// The application is the same for every server (and bench/c/ref_server.c):
//   "big50"  -> 50,000,000 bytes, one chunk
//   "chunks" -> 10000 chunks of 81 bytes, a streamed reply
//   "chunksq" -> the same; our handler does not await each reply.write()
//   anything else -> "pong"
import diagnostics from 'node:diagnostics_channel';
import { createBaselineServer } from '../net-baseline.mjs';
import { BIG50, CHUNKS, CHUNKSQ, DIAGNOSTICS_CHANNELS, PONG, bigReply, replyChunks, loadOurs } from './common.mjs';

const [impl, path, threadsArg] = process.argv.slice(2);
const threads = Number(threadsArg) || 4;

const isBig = (req) => req.length === 5 && req.equals(BIG50);
const isChunks = (req) => req.length === 6 && req.equals(CHUNKS);
const isChunksQ = (req) => req.length === 7 && req.equals(CHUNKSQ);

let server;
if (impl === 'baseline') {
  server = await createBaselineServer(path, (req) => {
    if (isBig(req)) return bigReply();
    if (isChunks(req) || isChunksQ(req)) return replyChunks(); // an array: each element is one chunk
    return PONG;
  });
} else if (impl === 'ours' || impl === 'ours+dc') {
  if (impl === 'ours+dc') subscribeDiagnostics();
  const { lib, reason } = await loadOurs();
  if (!lib) {
    console.error(`server-proc: our library is not available: ${reason}`);
    process.exit(3);
  }
  // Streamed reply written the way the API documents it: each chunk is
  // handed to reply.write() as it is produced, honouring its promise.
  const streamChunks = async (reply) => {
    for (const c of replyChunks()) await reply.write(c);
  };
  // Variant: queue every write at once, wait for all of them at the end.
  const queueChunks = (reply) => Promise.all(replyChunks().map((c) => reply.write(c)));
  server = await lib.createServer(
    path,
    (req, reply) => {
      if (isBig(req)) return bigReply();
      if (isChunks(req)) return streamChunks(reply);
      if (isChunksQ(req)) return queueChunks(reply).then(() => undefined);
      return PONG;
    },
    { threads },
  );
} else {
  console.error(`server-proc: unknown implementation ${impl}`);
  process.exit(2);
}

// The subscriber does what a light tracer does: count, keep nothing.
function subscribeDiagnostics() {
  let seen = 0;
  for (const name of DIAGNOSTICS_CHANNELS) diagnostics.subscribe(name, () => seen++);
  process.on('exit', () => process.stderr.write(`diagnostics messages: ${seen}\n`));
}

let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  // Never hang the harness on a close that waits for slow clients.
  setTimeout(() => process.exit(0), 3000).unref();
  try {
    await server.close();
  } catch (err) {
    console.error(`server-proc: close failed: ${err.message}`);
  }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write('ready\n');
