// The tool's stdout is buffered when it is not a terminal: the bytes, and
// their order relative to stderr, must be exactly what unbuffered output
// gives. Both streams go to one pipe here, so the order is visible.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { sendbytesVerdict } from '../../dist/test-app.js';
import { fixtures, tempDir } from '../helpers.js';
import { inProcessServer } from '../servers.js';
import { CLI, cli } from './helpers.js';

/** 16 MiB, far more than a pipe holds, in a pattern that shows any byte lost or out of place. */
const HUGE = Buffer.alloc(16 * 1024 * 1024);
for (let i = 0; i < HUGE.length; i++) HUGE[i] = 33 + ((i * 7 + (i >> 12)) % 90);

/** Runs the tool with stdout and stderr on the same pipe; resolves with what came through it, in order. */
function cliMerged(args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', '"$0" "$@" 2>&1', process.execPath, CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: Buffer.concat(out).toString('latin1') }));
  });
}

describe.skipIf(process.platform === 'win32')('simple-ipc output path', () => {
  it('keeps stdout lines and stderr messages in order when stdout is a pipe', async () => {
    const dir = tempDir('sipc-cli-');
    // The second request of the single sender fails (no flush: an incomplete response).
    let requests = 0;
    await inProcessServer(path.join(dir, 'x.ipc'), (request) => {
      requests++;
      if (requests === 2) throw new Error('second request fails');
      return sendbytesVerdict(request.subarray('sendbytes '.length));
    });
    const r = await cliMerged(['multiple', '--name=x.ipc', '--threads=1', '--batchsize=3', '--bytecount=5'], dir);
    expect(r).toEqual({
      code: 1,
      output:
        'sent:A00000005 rcvd:A00000005\n' +
        'error: could not read IPC response\n' +
        "error: client failed to sendbytes(6, 'A') to 'x.ipc'\n" +
        'sent:A00000007 rcvd:A00000007\n' +
        'client (good 2) (join 0), (errors 1)\n',
    });
  });

  it('writes large output whole, in blocks, ending with the summary line', async () => {
    const dir = tempDir('sipc-cli-');
    await inProcessServer(path.join(dir, 'x.ipc'), (request) => sendbytesVerdict(request.subarray('sendbytes '.length)));
    const r = await cliMerged(['multiple', '--name=x.ipc', '--threads=4', '--batchsize=500', '--bytecount=3'], dir);
    expect(r.code).toBe(0);
    const lines = r.output.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.pop()).toBe('client (good 2000) (join 0), (errors 0)');
    expect(lines.length).toBe(2000);
    for (const line of lines) expect(line).toMatch(/^sent:([A-D])(\d{8}) rcvd:\1\2$/);
    // Every request printed once (the order between senders may vary).
    expect(new Set(lines).size).toBe(2000);
  });

  it('multiple: every request is one whole line on stdout or one failure on stderr, and the summary counts them all', async () => {
    const dir = tempDir('sipc-cli-');
    // Requests whose ballast count is a multiple of 7 fail (no flush: an incomplete response).
    await inProcessServer(path.join(dir, 'x.ipc'), (request) => {
      const ballast = request.subarray('sendbytes '.length);
      if (ballast.length % 7 === 0) throw new Error('fails');
      return sendbytesVerdict(ballast);
    });
    const senders = 30;
    const batch = 60;
    const r = await cli(['multiple', '--name=x.ipc', `--threads=${senders}`, `--batchsize=${batch}`, '--bytecount=3'], dir);
    // What each sender k sends: byte 'A' + k % 26, counts 3 + batch * floor(k / 26) + i.
    const good = new Set<string>();
    const failed = new Set<string>();
    for (let k = 0; k < senders; k++) {
      const byte = String.fromCharCode(65 + (k % 26));
      for (let i = 0; i < batch; i++) {
        const count = 3 + batch * Math.floor(k / 26) + i;
        const padded = String(count).padStart(8, '0');
        if (count % 7 === 0) failed.add(`error: client failed to sendbytes(${count}, '${byte}') to 'x.ipc'`);
        else good.add(`sent:${byte}${padded} rcvd:${byte}${padded}`);
      }
    }
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.pop()).toBe(`client (good ${good.size}) (join 0), (errors ${failed.size})`);
    // Whole lines, each request once: a lost, doubled or split line shows here.
    expect(lines.length).toBe(good.size);
    expect(new Set(lines)).toEqual(good);
    const errors = r.stderr.split('\n').filter((line) => line.startsWith('error: client failed'));
    expect(errors.length).toBe(failed.size);
    expect(new Set(errors)).toEqual(failed);
  });

  it('writes output whole and in order to a non-blocking pipe that fills (EAGAIN: the rest waits for room)', async () => {
    const dir = tempDir('sipc-cli-');
    await inProcessServer(path.join(dir, 'x.ipc'), () => HUGE);
    const env = { ...process.env, NODE_OPTIONS: `--require ${path.join(fixtures, 'nonblocking-stdout.cjs')}` };
    const child = spawn(process.execPath, [CLI, 'send', '--name=x.ipc', '--token=huge'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const output = Buffer.concat(out);
    expect(output.length).toBe(HUGE.length + 1);
    expect(output.subarray(0, HUGE.length).equals(HUGE)).toBe(true);
    expect(output[HUGE.length]).toBe(0x0a);
  });

  it("ends quietly with exit code 1 when the reader goes away, as SIGPIPE ends Git's helper", async () => {
    const dir = tempDir('sipc-cli-');
    await inProcessServer(path.join(dir, 'x.ipc'), () => HUGE);
    const child = spawn(process.execPath, [CLI, 'send', '--name=x.ipc', '--token=huge'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    // The reader leaves after the first bytes; 16 MiB do not fit in the pipe.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect({ code, err }).toEqual({ code: 1, err: '' });
  });
});
