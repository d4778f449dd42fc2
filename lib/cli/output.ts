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

class StdoutBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** Set when the reader went away: nothing more is written. */
  broken = false;

  constructor(private readonly buffered: boolean) {}

  write(data: string | Uint8Array): void {
    if (!this.buffered) {
      process.stdout.write(data);
      return;
    }
    const chunk = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= BLOCK_BYTES) this.flush();
  }

  flush(): void {
    if (this.size === 0 || this.broken) return;
    const block = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks.length = 0;
    this.size = 0;
    process.stdout.write(block);
  }
}

const stdout = new StdoutBuffer(process.stdout.isTTY !== true);

export function writeOut(data: string | Uint8Array): void {
  stdout.write(data);
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
