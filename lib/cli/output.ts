// The tool's output. When stdout is not a terminal (a pipe, a file: how
// scripts and Git's tests read it) it is buffered as C's stdio buffers it,
// and written in large blocks: `multiple` prints one line per request,
// and one write per line would cost more than the requests. Before
// anything goes to stderr, and at exit, the buffer is flushed, so that the
// two streams interleave exactly as they would unbuffered. On a terminal
// every write goes out at once, as before.
//
// On POSIX, a pipe, socket or file is written with write(2) on descriptor
// 1 (fs.writeSync), the way C's stdio writes it: no process.stdout, whose
// creation for a pipe loads Node's net module and streams, a few
// milliseconds of every start. A terminal, Windows, and the cases below go
// through process.stdout. A descriptor that another process made
// non-blocking may find the pipe full (EAGAIN): from then on everything
// goes through process.stdout, which waits for room, in order. A command
// that streams with backpressure (writeOutAndWait) switches to it too.
//
// JS thread only. Node writes to pipes and files synchronously on POSIX,
// so a flush has reached the kernel when it returns.
import * as fs from 'node:fs';

import { EXIT_FAILED } from './usage.js';

/** Buffered stdout is written out once it holds this much. */
const BLOCK_BYTES = 64 * 1024;

/** Whether stdout is a pipe, socket or file that write(2) on descriptor 1 can take. */
function writableDescriptor(): boolean {
  if (process.platform === 'win32') return false;
  try {
    const stat = fs.fstatSync(1);
    return stat.isFIFO() || stat.isSocket() || stat.isFile();
  } catch {
    return false;
  }
}

let stdoutStream: NodeJS.WriteStream | null = null;

/** process.stdout, made on first use, with the handler of a reader that went away. */
function stream(): NodeJS.WriteStream {
  if (stdoutStream === null) {
    stdoutStream = process.stdout;
    stdoutStream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') readerGone();
      throw err;
    });
  }
  return stdoutStream;
}

// Data is copied into the current block as it comes (no Buffer per
// write); a block is handed to stdout when full and never reused, so
// stdout may keep it however long it likes.
class StdoutBuffer {
  private block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
  private size = 0;
  /** Set when the reader went away: nothing more is written. */
  broken = false;
  /** Written with write(2) on descriptor 1 (else through process.stdout). */
  direct: boolean;
  private readonly buffered: boolean;

  constructor() {
    this.direct = writableDescriptor();
    this.buffered = this.direct || stream().isTTY !== true;
  }

  write(data: string | Uint8Array, encoding: BufferEncoding): void {
    if (!this.buffered) {
      this.send(data, encoding);
      return;
    }
    const length = typeof data === 'string' ? Buffer.byteLength(data, encoding) : data.byteLength;
    if (length > BLOCK_BYTES - this.size) {
      this.flush();
      if (length >= BLOCK_BYTES) {
        // As large as a block: written as it is.
        this.send(data, encoding);
        return;
      }
    }
    if (typeof data === 'string') this.block.write(data, this.size, encoding);
    else this.block.set(data, this.size);
    this.size += length;
    if (this.size === BLOCK_BYTES) this.flush();
  }

  flush(): void {
    if (this.size === 0) return;
    const full = this.block.subarray(0, this.size);
    this.block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
    this.size = 0;
    this.send(full, 'utf8');
  }

  private send(data: string | Uint8Array, encoding: BufferEncoding): void {
    if (this.broken) return;
    if (!this.direct) {
      if (typeof data === 'string') stream().write(data, encoding);
      else stream().write(data);
      return;
    }
    const bytes = typeof data === 'string' ? Buffer.from(data, encoding) : data;
    let offset = 0;
    while (offset < bytes.byteLength) {
      try {
        offset += fs.writeSync(1, bytes, offset, bytes.byteLength - offset);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') return readerGone();
        if (code !== 'EAGAIN') throw err;
        // Non-blocking and full: process.stdout waits for room.
        this.direct = false;
        stream().write(bytes.subarray(offset));
        return;
      }
    }
  }
}

const stdout = new StdoutBuffer();

/**
 * A reader that went away (`simple-ipc send --token=big | head`) ends us
 * quietly, as SIGPIPE ends Git's helper; whatever is buffered is dropped.
 */
function readerGone(): void {
  stdout.broken = true;
  process.exit(EXIT_FAILED);
}

/** Writes `data` (a string in `encoding`, UTF-8 unless told) to stdout. */
export function writeOut(data: string | Uint8Array, encoding: BufferEncoding = 'utf8'): void {
  stdout.write(data, encoding);
}

/** Writes what stdout holds (before stderr output, and at exit). */
export function flushOut(): void {
  stdout.flush();
}

/**
 * Writes `chunk` now, through process.stdout, and resolves once stdout
 * takes more: for output streamed as it arrives, where the wait holds
 * the sender back. Everything after it goes through process.stdout too.
 */
export async function writeOutAndWait(chunk: Uint8Array): Promise<void> {
  stdout.flush();
  stdout.direct = false;
  if (stdout.broken) return;
  const out = stream();
  if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
}

export function writeErr(text: string): void {
  stdout.flush();
  process.stderr.write(text);
}

/** Git's error(): one line on stderr; returns the failure exit code. */
export function error(message: string): number {
  writeErr(`error: ${message}\n`);
  return EXIT_FAILED;
}

/** Anything left in the buffer at a normal exit is written out. */
export function installStdoutHandlers(): void {
  process.on('exit', flushOut);
}
