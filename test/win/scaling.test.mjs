// How the Windows transport scales (thread counts are read from the
// process with a Toolhelp snapshot, never assumed):
//  - the asynchronous client runs every exchange of a JS environment on
//    one completion-port thread, however many run at once;
//  - a one-thread server keeps several instances listening, so that
//    clients arriving together never meet a pipe with none.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { ipcPath, NEEDS_PROBE, probe, repoRoot, serve, spawnNode, waitFor, waitForLine } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const lib = path.join(repoRoot, 'dist', 'index.js');

// These count threads and refusals, not time: on a loaded machine the
// thousand exchanges may take minutes, so the connect window and the test
// timeouts are far above what an idle machine needs (about 20 s).
const SLOW_OK = { timeout: 300000 };

describe('scaling', { skip: NEEDS_PROBE, timeout: 600000 }, () => {
  it('1000 concurrent sendCommand calls: all answered, the client process stays under 10 threads', SLOW_OK, async (t) => {
    const p = ipcPath(t);
    await serve(t, p, (r) => Buffer.concat([Buffer.from('re:'), r]), { threads: 4 });
    // The client in a process of its own, so that only its threads count.
    const script = `
      const { sendCommand } = require(${JSON.stringify(lib)});
      console.log('ready');
      setTimeout(async () => {
        const calls = Array.from({ length: 1000 }, (_, i) => sendCommand(${JSON.stringify(p)}, 'n' + i, { connectTimeoutMs: 240000 }));
        console.log('started');
        const results = await Promise.allSettled(calls);
        let ok = 0;
        const errors = {};
        results.forEach((r, i) => {
          if (r.status === 'fulfilled' && r.value.toString() === 're:n' + i) ok++;
          else {
            const key = r.status === 'fulfilled' ? 'wrong answer' : r.reason.code + ': ' + r.reason.message;
            errors[key] = (errors[key] || 0) + 1;
          }
        });
        console.log('result ' + JSON.stringify({ ok, errors }));
      }, 200);`;
    const child = spawnNode(t, ['-e', script]);
    await waitForLine(child, /^ready/);
    const counts = [];
    const sample = () => {
      const n = probe.threadCount(child.pid);
      if (n > 0) counts.push(n);
    };
    sample();
    const sampler = setInterval(sample, 5);
    let line;
    try {
      line = await waitForLine(child, /^result /, 280000);
    } finally {
      clearInterval(sampler);
    }
    const { ok, errors } = JSON.parse(line.slice('result '.length));
    assert.deepEqual(errors, {});
    assert.equal(ok, 1000);
    assert.ok(counts.length >= 5, `only ${counts.length} thread-count samples`);
    const most = Math.max(...counts);
    console.log(`client process threads: ${counts[0]} before, at most ${most} during (${counts.length} samples)`);
    assert.ok(most < 10, `the client process had ${most} threads`);
  });

  it('a one-thread server, 3 clients at once for 15 rounds (Git\'s probe, then a connect that does not wait): none refused', SLOW_OK, async (t) => {
    const p = ipcPath(t);
    await serve(t, p, () => 'pong', { threads: 1 });
    const clients = 3;
    const rounds = 15;
    // gate[0]: the round the clients may start; gate[1]: clients done.
    const gate = new Int32Array(new SharedArrayBuffer(8));
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { getActiveStateSync, sendCommandSync } = require(workerData.lib);
      const gate = new Int32Array(workerData.gate);
      const outcomes = [];
      for (let round = 1; round <= workerData.rounds; round++) {
        Atomics.wait(gate, 0, round - 1);
        // As Git's client: WaitNamedPipeW with the server's default wait
        // (50 ms), then CreateFileW, refused if the pipe is busy.
        let outcome = getActiveStateSync(workerData.path);
        if (outcome === 'listening') {
          try {
            outcome = sendCommandSync(workerData.path, 'ping', { waitIfBusy: false }).toString();
          } catch (e) {
            outcome = e.code;
          }
        }
        outcomes.push(outcome);
        Atomics.add(gate, 1, 1);
      }
      parentPort.postMessage(outcomes);`;
    const workers = Array.from(
      { length: clients },
      () => new Worker(source, { eval: true, workerData: { lib, path: p, gate: gate.buffer, rounds } }),
    );
    const results = workers.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject)));
    // The JS thread answers the requests, so it waits without blocking.
    for (let round = 1; round <= rounds; round++) {
      await waitFor(() => Atomics.load(gate, 1) === clients * (round - 1), 60000, `round ${round - 1} to end`);
      Atomics.store(gate, 0, round);
      Atomics.notify(gate, 0);
    }
    const outcomes = (await Promise.all(results)).flat();
    const refused = outcomes.filter((o) => o !== 'pong');
    console.log(`${outcomes.length} connects, ${refused.length} refused`);
    assert.equal(outcomes.length, clients * rounds);
    assert.deepEqual(refused, []);
  });
});
