// Lifecycle on Windows: worker threads, unref(), and shutdown with
// listening instances, idle clients, hung handlers and clients arriving
// while the server stops.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { gitPipeName, hang, ipcPath, latch, rawConnect, rejection, repoRoot, serve, sipc, sleep, spawnNode, waitFor } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { createServer, defaultSocketPath, getActiveState, sendCommand } = sipc;

describe('lifecycle', () => {
  it('a server and clients in a worker thread; the worker exits with its server running', async (t) => {
    const p = ipcPath(t);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { createServer, sendCommand } = require(workerData.lib);
      (async () => {
        await createServer(workerData.path, () => 'from worker');
        const answer = await sendCommand(workerData.path, 'x');
        parentPort.postMessage(answer.toString());
      })();`;
    const worker = new Worker(code, { eval: true, workerData: { lib: path.join(repoRoot, 'dist', 'index.js'), path: p } });
    const message = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.equal(message, 'from worker');
    assert.equal(await getActiveState(p), 'listening');
    await worker.terminate();
    await waitFor(async () => (await getActiveState(p)) === 'path-not-found', 5000, 'the pipe to go');
  });

  it('defaultSocketPath: a path in the user\'s temporary directory, where a server and a client meet', async () => {
    const os = await import('node:os');
    const name = `sipc-default-${process.pid}`;
    const p = defaultSocketPath(name);
    assert.equal(p, path.join(os.tmpdir(), `${name}.ipc`));
    const server = await createServer(p, () => 'here');
    try {
      assert.equal((await sendCommand(defaultSocketPath(name), 'x')).toString(), 'here');
    } finally {
      await server.close();
    }
  });

  it('an unref()d server lets the process exit', async (t) => {
    const p = ipcPath(t);
    const script = `require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))}).createServer(${JSON.stringify(p)}, () => 'x').then((s) => { s.unref(); console.log('up'); });`;
    const child = spawnNode(t, ['-e', script]);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    assert.match(child.output(), /up/);
  });
});

describe('shutdown', () => {
  it('with listening instances, idle clients and a hung handler: close() is prompt and complete', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, () => {
      inHandler.fire();
      return hang();
    }, { threads: 4 });
    const idle = [];
    for (let i = 0; i < 10; i++) idle.push(await rawConnect(t, gitPipeName(p)));
    const hung = rejection(sendCommand(p, 'x'));
    await inHandler.fired;
    const started = Date.now();
    await server.close({ force: true });
    const took = Date.now() - started;
    assert.ok(took < 1000, `close took ${took} ms`);
    assert.equal((await hung).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
    await waitFor(() => idle.every((s) => s.destroyed || s.closed), 3000, 'idle clients to be dropped');
    assert.equal(await getActiveState(p), 'path-not-found');
    // The name is free at once.
    await serve(t, p);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });

  it('clients connecting while the server stops all settle, none hangs', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, async () => {
      inHandler.fire();
      await sleep(20);
      return 'ok';
    }, { threads: 2 });
    const outcomes = Array.from({ length: 60 }, () => sendCommand(p, 'x').then((b) => b.toString(), (e) => `${e.code}: ${e.message}`));
    // Close while the first handler runs (it may finish) and the others
    // are connecting or queued, however slow the machine is.
    await inHandler.fired;
    await server.close({ timeoutMs: 1000 });
    const settled = await Promise.all(outcomes);
    const allowed = new Set(['ok', 'ENOENT', 'ERR_IPC_INCOMPLETE_RESPONSE', 'EPIPE', 'ETIMEDOUT']);
    for (const s of settled) assert.ok(allowed.has(s.split(':')[0]), `unexpected outcome ${s}`);
    assert.ok(settled.includes('ok'));
  });

  it('a client waiting for the name (waitIfNotFound) reaches the next server', async (t) => {
    const p = ipcPath(t);
    const first = await serve(t, p);
    await first.close();
    const waiting = sendCommand(p, 'ping', { waitIfNotFound: true, connectTimeoutMs: 3000 });
    await sleep(200);
    await serve(t, p);
    assert.equal((await waiting).toString(), 'pong');
  });
});

// docs/protocol.md#idle-stop, with the rule of native/core (IdleRule) that
// the POSIX server follows too.
describe('idleTimeoutMs', () => {
  /** Resolves with [reason, when] once the server stops. */
  const closedAt = (server) => server.closed.then((reason) => [reason, Date.now()]);

  it("stops with 'idle' once no client has been connected for that long, not before; the name is gone", async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, undefined, { idleTimeoutMs: 300 });
    const closed = closedAt(server);
    let stopped = false;
    void closed.then(() => (stopped = true));
    // Requests 100 ms apart keep it: each connection is activity.
    let last = 0;
    for (let i = 0; i < 5; i++) {
      assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
      last = Date.now();
      await sleep(100);
    }
    assert.equal(stopped, false, 'stopped while clients kept coming');
    const [reason, at] = await Promise.race([closed, sleep(10000).then(() => ['still running', 0])]);
    assert.equal(reason, 'idle');
    // The server's clock starts when it has recycled the last instance,
    // a moment after the client had its answer.
    assert.ok(at - last >= 300 - 50, `stopped ${at - last} ms after the last client`);
    assert.equal(await getActiveState(p), 'path-not-found');
  });

  it('an open connection holds it off: a silent client, then a conversation in the handler', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const release = latch();
    const server = await serve(t, p, async () => {
      inHandler.fire();
      await release.fired;
      return 'done';
    }, { idleTimeoutMs: 200, requestTimeoutMs: 0 });
    let stopped = false;
    const closed = closedAt(server);
    void closed.then(() => (stopped = true));
    const silent = await rawConnect(t, gitPipeName(p));
    await sleep(600); // three idle timeouts with only a silent client
    assert.equal(stopped, false, 'stopped with a client connected');
    const answer = sendCommand(p, 'x');
    // A server that stopped already fails the test here, not by a timeout.
    await Promise.race([inHandler.fired, answer]);
    silent.destroy();
    await sleep(600); // three more with only a conversation in the handler
    assert.equal(stopped, false, 'stopped with a conversation in the handler');
    release.fire();
    assert.equal((await answer).toString(), 'done');
    const done = Date.now();
    const [reason, at] = await Promise.race([closed, sleep(10000).then(() => ['still running', 0])]);
    assert.equal(reason, 'idle');
    assert.ok(at - done >= 200 - 50, `stopped ${at - done} ms after the conversation ended`);
  });

  // A named pipe has no atomic "stop accepting": a client can still
  // connect to a waiting instance until its handle is closed. The server
  // looks for such a client right before closing each instance
  // (ClientArrivedAfterCancel in native/win/server_win.cc); only one that
  // connects between that look and the close is lost (docs/windows.md#options-that-differ).
  // Without the look, 4 to 10 of about 100 clients here were lost; with
  // it, 0 in most runs and 1 in some runs on a loaded machine.
  it('clients arriving around the deadline are answered or find no server; at most 2 of about 100 lost, in the instant an instance closes', async (t) => {
    const outcomes = new Map();
    for (let round = 0; round < 5; round++) {
      const p = ipcPath(t);
      const server = await serve(t, p, undefined, { idleTimeoutMs: 150, threads: 2 });
      let stopped = false;
      void server.closed.then(() => (stopped = true));
      assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
      // Bursts of clients spaced close to the idle timeout (the first that
      // comes late finds the server stopping), until it is gone.
      for (let i = 0; i < 100 && !stopped; i++) {
        await sleep(125 + ((i * 7) % 40));
        const burst = await Promise.all(Array.from({ length: 4 }, () =>
          sendCommand(p, 'ping', { waitIfBusy: false }).then((b) => b.toString(), (e) => `${e.code}/${e.state}`)));
        for (const o of burst) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      }
      assert.equal(await server.closed, 'idle');
    }
    console.log(`idle deadline outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    // Answered, no pipe, or every instance taken as the server stops; a
    // lost request shows as an incomplete response or EPIPE.
    const served = ['pong', 'ENOENT/path-not-found', 'EBUSY/not-listening'];
    const lost = ['ERR_IPC_INCOMPLETE_RESPONSE/undefined', 'EPIPE/undefined'];
    let lostCount = 0;
    for (const [o, n] of outcomes) {
      assert.ok(served.includes(o) || lost.includes(o), `outcome ${o}: ${JSON.stringify(Object.fromEntries(outcomes))}`);
      if (lost.includes(o)) lostCount += n;
    }
    assert.ok(lostCount <= 2, `${lostCount} requests lost: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(outcomes.get('pong') > 0);
  });
});
