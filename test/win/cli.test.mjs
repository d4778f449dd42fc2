// The command line tool on Windows: the same subcommands and output as on
// POSIX (Git's test helper), over named pipes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { ipcPath, repoRoot, sipc } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const cli = path.join(repoRoot, 'dist', 'cli.js');

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the CLI over named pipes', () => {
  it('start-daemon, is-active, send, sendbytes, multiple, stop-daemon', async (t) => {
    const p = ipcPath(t);
    const name = `--name=${p}`;
    t.onTestFinished(() => sipc.sendCommand(p, 'quit').catch(() => {}));

    assert.equal((await run(['is-active', name])).code, 1);
    const started = await run(['start-daemon', name, '--max-wait=30']);
    assert.equal(started.code, 0, started.stderr);
    assert.equal((await run(['is-active', name])).code, 0);
    assert.equal((await run(['send', name, '--token=ping'])).stdout, 'pong\n');
    // The daemon serves this process too (another process's client).
    assert.equal((await sipc.sendCommand(p, 'ping')).toString(), 'pong');
    assert.equal((await run(['sendbytes', name, '--bytecount=70000', '--byte=z'])).stdout, 'sent:z00070000 rcvd:z00070000\n');
    const multiple = await run(['multiple', name, '--threads=3', '--batchsize=2', '--bytecount=100']);
    assert.equal(multiple.code, 0, multiple.stderr);
    assert.match(multiple.stdout, /client \(good 6\) \(join 0\), \(errors 0\)/);
    const stopped = await run(['stop-daemon', name, '--max-wait=30']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(await sipc.getActiveState(p), 'path-not-found');
  });
});
