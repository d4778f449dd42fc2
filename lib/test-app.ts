// The test application of Git's simple-ipc tests (docs/protocol.md#test-application): a
// handler that makes any simple-ipc server or client checkable against
// any other. Used by the `simple-ipc run-daemon` command and the tests.
import { setTimeout as sleep } from 'node:timers/promises';

import { QUIT, type Handler, type Reply } from './server.js';

const BIG_ROWS = 10000;
const SLOW_ROWS = 1000;
const SLOW_PAUSE_MS = 10;
const SENDBYTES = Buffer.from('sendbytes ');

/** Row `row` of the `big`, `chunk` and `slow` responses: `big: ` + 75-digit row number + newline. */
export function bigRow(row: number): string {
  return `big: ${String(row).padStart(75, '0')}\n`;
}

let bigResponse: string | undefined;

/** The whole `big` response (10000 rows). */
export function bigResponseText(): string {
  if (bigResponse === undefined) {
    const rows: string[] = [];
    for (let row = 0; row < BIG_ROWS; row++) rows.push(bigRow(row));
    bigResponse = rows.join('');
  }
  return bigResponse;
}

/** The `sendbytes` verdict on a ballast: `rcvd:<byte><len %08d>\n`, or `errs:<count>\n`. */
export function sendbytesVerdict(ballast: Buffer): Buffer {
  const length = ballast.length;
  const first = length > 0 ? ballast[0]! : 0;
  // Every byte is the first one when every byte is the one before it: one
  // memcmp of the ballast against itself shifted by a byte, no allocation.
  if (length > 1 && ballast.compare(ballast, 1, length, 0, length - 1) !== 0) return Buffer.from(`errs:${countOthers(ballast, first)}\n`);
  const verdict = Buffer.from(`rcvd:?${String(length).padStart(8, '0')}\n`, 'latin1');
  verdict[5] = first;
  return verdict;
}

/** How many bytes of `ballast` are not `first`. */
function countOthers(ballast: Buffer, first: number): number {
  // Compare in large slices against a block of the first byte (memcmp);
  // count byte by byte only in slices that differ.
  const block = Buffer.alloc(Math.min(ballast.length, 64 * 1024), first);
  let errs = 0;
  for (let offset = 0; offset < ballast.length; offset += block.length) {
    const end = Math.min(offset + block.length, ballast.length);
    if (ballast.compare(block, 0, end - offset, offset, end) === 0) continue;
    for (let i = offset; i < end; i++) if (ballast[i] !== first) errs++;
  }
  return errs;
}

// Git's test application matches its command words on the whole request,
// but echoes an unknown command, and reads the sendbytes ballast, as C
// strings: up to the first NUL byte.
function cString(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

const WORDS = new Set(['quit', 'ping', 'big', 'chunk', 'slow']);

function startsWithSendbytes(request: Buffer): boolean {
  return request.length >= SENDBYTES.length && SENDBYTES.compare(request, 0, SENDBYTES.length) === 0;
}

// A plain function, not an async one: the commands answered at once (ping,
// sendbytes, big, quit) return their answer, and the server replies while
// the handler's turn lasts, without a promise, its callbacks and the
// conversation's bookkeeping across turns (docs/design.md#handlers-and-replies).
// Only chunk and slow, which await their writes, return a promise.
export const testAppHandler: Handler = (request, reply) => {
  // Only short requests can be command words: never decode a big one.
  const command = request.length <= 5 && WORDS.has(request.toString('latin1')) ? request.toString('latin1') : '';
  switch (command) {
    case 'quit':
      return QUIT;
    case 'ping':
      return 'pong';
    case 'big':
      return bigResponseText();
    case 'chunk':
      return writeRows(reply, BIG_ROWS, 0);
    case 'slow':
      return writeRows(reply, SLOW_ROWS, SLOW_PAUSE_MS);
  }
  if (startsWithSendbytes(request)) return sendbytesVerdict(cString(request.subarray(SENDBYTES.length)));
  return Buffer.concat([Buffer.from('unhandled command: '), cString(request)]);
};

/** chunk and slow: `rows` rows of `big`, one write each, with a pause after each (if any). */
async function writeRows(reply: Reply, rows: number, pauseMs: number): Promise<void> {
  for (let row = 0; row < rows; row++) {
    await reply.write(bigRow(row));
    if (pauseMs > 0) await sleep(pauseMs);
  }
}
