// The tool's output. When stdout is not a terminal (a pipe, a file: how
// scripts and Git's tests read it) it is buffered as C's stdio buffers it,
// and written in large blocks: `multiple` prints one line per request,
// and one write per line would cost more than the requests. Before
// anything goes to stderr, and at exit, the buffer is flushed, so that the
// two streams interleave exactly as they would unbuffered. On a terminal
// every write goes out at once, as before.
//
// JS thread only. Node writes to pipes and files synchronously on POSIX,
// so a flush has reached the kernel when it returns.
import { EXIT_FAILED } from './usage.js';

/** Buffered stdout is written out once it holds this much. */
const BLOCK_BYTES = 64 * 1024;

// Data is copied into the current block as it comes (no Buffer per
// write); a block is handed to stdout when full and never reused, so
// stdout may keep it however long it likes.
class StdoutBuffer {
  private block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
  private size = 0;
  /** Set when the reader went away: nothing more is written. */
  broken = false;

  constructor(private readonly buffered: boolean) {}

  write(data: string | Uint8Array, encoding: BufferEncoding): void {
    if (!this.buffered) {
      if (typeof data === 'string') process.stdout.write(data, encoding);
      else process.stdout.write(data);
      return;
    }
    const length = typeof data === 'string' ? Buffer.byteLength(data, encoding) : data.byteLength;
    if (length > BLOCK_BYTES - this.size) {
      this.flush();
      if (length >= BLOCK_BYTES) {
        // As large as a block: written as it is.
        if (this.broken) return;
        if (typeof data === 'string') process.stdout.write(data, encoding);
        else process.stdout.write(data);
        return;
      }
    }
    if (typeof data === 'string') this.block.write(data, this.size, encoding);
    else this.block.set(data, this.size);
    this.size += length;
    if (this.size === BLOCK_BYTES) this.flush();
  }

  flush(): void {
    if (this.size === 0 || this.broken) return;
    const full = this.block.subarray(0, this.size);
    this.block = Buffer.allocUnsafeSlow(BLOCK_BYTES);
    this.size = 0;
    process.stdout.write(full);
  }
}

const stdout = new StdoutBuffer(process.stdout.isTTY !== true);

/** Writes `data` (a string in `encoding`, UTF-8 unless told) to stdout. */
export function writeOut(data: string | Uint8Array, encoding: BufferEncoding = 'utf8'): void {
  stdout.write(data, encoding);
}

/** Writes what stdout holds (before stderr output, and at exit). */
export function flushOut(): void {
  stdout.flush();
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

/**
 * A reader that went away (`simple-ipc send --token=big | head`) ends us
 * quietly, as SIGPIPE ends Git's helper; whatever is buffered is dropped.
 * Anything left in the buffer at a normal exit is written out.
 */
export function installStdoutHandlers(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      stdout.broken = true;
      process.exit(EXIT_FAILED);
    }
    throw err;
  });
  process.on('exit', flushOut);
}
