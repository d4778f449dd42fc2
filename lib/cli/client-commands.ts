// The client subcommands: send, sendbytes, multiple, stop-daemon.
import { sendCommand, sendCommandSync } from '../client.js';
import type { ClientOptions } from '../options.js';
import type { Options } from './options.js';
import { error, writeErr, writeOut } from './output.js';
import { activeState, shown } from './state.js';
import { EXIT_FAILED, EXIT_OK } from './usage.js';

/** Git's helper connects with wait-if-busy and without wait-if-not-found. */
const CLIENT_OPTIONS: ClientOptions = { waitIfBusy: true, waitIfNotFound: false };

/**
 * Git's client reports an exchange that failed after it connected (a
 * connect failure is reported by the probe or the caller only).
 */
function reportExchangeError(err: unknown): void {
  const e = err as { state?: string; code?: string; syscall?: string };
  if (e.state !== undefined) return;
  if (e.code === 'EPIPE' || e.syscall === 'write') writeErr('error: could not send IPC command\n');
  else writeErr('error: could not read IPC response\n');
}

const NEWLINE = Buffer.from('\n');

// A one-shot command (send, sendbytes) makes one exchange and nothing
// else: the blocking client makes it on this thread, with no I/O thread
// or event-loop turn. (The thread rule is the library's: this process has
// nothing else to do meanwhile.)

/** Sends the token; prints the response and a newline. */
export async function send(options: Options, token: string | null): Promise<number> {
  const command = token !== null && token !== '' ? token : '(no-command)';
  let response: Buffer;
  try {
    response = sendCommandSync(options.name!, command, CLIENT_OPTIONS);
  } catch (err) {
    reportExchangeError(err);
    return error(`failed to send '${command}' to '${shown(options.name)}'`);
  }
  if (response.length > 0) {
    writeOut(response);
    writeOut(NEWLINE);
  }
  return EXIT_OK;
}

const SENDBYTES = Buffer.from('sendbytes ');
const TRAILING_SPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

function sendbytesRequest(byte: number, count: number): Buffer {
  const request = Buffer.allocUnsafe(SENDBYTES.length + count);
  SENDBYTES.copy(request, 0);
  request.fill(byte, SENDBYTES.length);
  return request;
}

/**
 * Writes `sent:<byte><count %08d> <response without trailing whitespace>\n`
 * in pieces (stdout buffers them; no Buffer per line). The byte is raw:
 * the prefix is latin1.
 */
function writeSendbytesLine(byte: number, count: number, response: Buffer): void {
  let end = response.length;
  while (end > 0 && TRAILING_SPACE.has(response[end - 1]!)) end--;
  writeOut(`sent:${String.fromCharCode(byte)}${String(count).padStart(8, '0')} `, 'latin1');
  writeOut(response.subarray(0, end));
  writeOut(NEWLINE);
}

function sendbytesFailure(byte: number, count: number, name: string | null): number {
  return error(`client failed to sendbytes(${count}, '${Buffer.from([byte]).toString('latin1')}') to '${shown(name)}'`);
}

function ballastByte(options: Options): number {
  // The first byte of --byte (Git takes the first char of the C string).
  if (options.byte !== null && options.byte !== '') return Buffer.from(options.byte)[0]!;
  return 'x'.charCodeAt(0);
}

export async function sendbytes(options: Options): Promise<number> {
  const byte = ballastByte(options);
  const count = options.bytecount;
  let response: Buffer;
  try {
    response = sendCommandSync(options.name!, sendbytesRequest(byte, count), CLIENT_OPTIONS);
  } catch (err) {
    reportExchangeError(err);
    return sendbytesFailure(byte, count, options.name);
  }
  writeSendbytesLine(byte, count, response);
  return EXIT_OK;
}

export async function multiple(options: Options): Promise<number> {
  let good = 0;
  let errors = 0;
  // One sender is a plain sequential loop, as Git's single thread is: the
  // blocking client then costs no thread hand-off per request (nothing
  // else runs on this thread meanwhile). More senders run concurrently.
  const exchange =
    options.threads === 1
      ? (request: Uint8Array) => Promise.resolve(sendCommandSync(options.name!, request, CLIENT_OPTIONS))
      : (request: Uint8Array) => sendCommand(options.name!, request, CLIENT_OPTIONS);
  const sender = async (k: number) => {
    const byte = 'A'.charCodeAt(0) + (k % 26);
    const base = options.bytecount + options.batchsize * Math.floor(k / 26);
    // Each request of this sender is a prefix of its largest one: built
    // once, never changed, so every exchange can send a view of it (no
    // allocation and fill per request).
    const largest = sendbytesRequest(byte, base + options.batchsize - 1);
    for (let i = 0; i < options.batchsize; i++) {
      const count = base + i;
      try {
        const response = await exchange(largest.subarray(0, SENDBYTES.length + count));
        writeSendbytesLine(byte, count, response);
        good++;
      } catch (err) {
        reportExchangeError(err);
        sendbytesFailure(byte, count, options.name);
        errors++;
      }
    }
  };
  const senders: Promise<void>[] = [];
  for (let k = 0; k < options.threads; k++) senders.push(sender(k));
  await Promise.all(senders);
  // "(join N)" counts threads Git's helper could not join: always 0 here.
  writeOut(`client (good ${good}) (join 0), (errors ${errors})\n`);
  return errors > 0 ? EXIT_FAILED : EXIT_OK;
}

/** Sends `quit`, then waits (checking every 100 ms) until the path no longer listens. */
export async function stopDaemon(options: Options): Promise<number> {
  const started = Date.now();
  const sent = await send(options, 'quit');
  if (sent !== EXIT_OK) return sent;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if ((await activeState(options.name)) !== 'listening') return EXIT_OK;
    if (Date.now() - started > options.maxWait * 1000) return error('daemon has not shutdown yet');
  }
}
