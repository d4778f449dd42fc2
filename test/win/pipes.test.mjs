// Named-pipe specifics (docs/protocol.md#windows-pipe-instances, #windows-pipe-names): the pipe name, busy pipes, instances,
// shutdown, peers in other processes, and interop with Node's own `net`
// pipes on the same names.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
  gitPipeName,
  frame,
  hang,
  ipcPath,
  latch,
  NEEDS_PROBE,
  NEEDS_WINDOWS_FIRST_INSTANCE,
  probe,
  rawConnect,
  rawExchange,
  rejection,
  repoRoot,
  serve,
  sipc,
  sleep,
  spawnNode,
  tempDir,
  unframe,
  uniquePipeName,
  waitFor,
} from './helpers.mjs';

const { createServer, getActiveState, getActiveStateSync, sendCommand, sendCommandSync, streamCommand } = sipc;

describe('pipe names', () => {
  it('a path maps to \\\\.\\pipe\\ + its real path, with C: as C_ and / as \\ (Git\'s rule)', async (t) => {
    const p = ipcPath(t, 'fsmonitor--daemon.ipc');
    await serve(t, p);
    const name = gitPipeName(p);
    assert.match(name, /^\\\\\.\\pipe\\[A-Za-z]_\\.*\\fsmonitor--daemon\.ipc$/);
    // A client that knows only the rule (Node's net) reaches the server.
    const { data } = await rawExchange(name, frame('ping'));
    assert.equal(data.toString(), '0008pong0000');
  });

  it('forward slashes, other case and a relative path name the same pipe', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal((await sendCommand(p.replace(/\\/g, '/'), 'ping')).toString(), 'pong');
    assert.equal((await sendCommand(p.toUpperCase(), 'ping')).toString(), 'pong');
    const cwd = process.cwd();
    process.chdir(path.dirname(p));
    try {
      assert.equal((await sendCommand(path.basename(p), 'ping')).toString(), 'pong');
      assert.equal(getActiveStateSync(path.basename(p)), 'listening');
    } finally {
      process.chdir(cwd);
    }
  });

  it("a directory reached through a junction names the pipe of the junction's target", async (t) => {
    const real = tempDir(t);
    const link = path.join(tempDir(t), 'link');
    try {
      fs.symlinkSync(real, link, 'junction');
    } catch (error) {
      t.skip(`cannot create a junction here: ${error.code}`);
      return;
    }
    await serve(t, path.join(link, 'x.ipc'));
    // The target as the junction stores it (absolute, its own drive).
    assert.equal(gitPipeName(path.join(link, 'x.ipc')), gitPipeName(path.join(fs.readlinkSync(link), 'x.ipc')));
    if (probe) assert.equal(probe.tryOpen(gitPipeName(path.join(link, 'x.ipc'))), 0);
    assert.equal((await sendCommand(path.join(real, 'x.ipc'), 'ping')).toString(), 'pong');
  });

  it('a path that starts with \\\\.\\pipe\\ is the pipe name itself', async (t) => {
    const name = uniquePipeName();
    const server = await serve(t, name);
    assert.equal(server.path, name);
    assert.equal((await sendCommand(name, 'ping')).toString(), 'pong');
    assert.equal((await rawExchange(name, frame('ping'))).data.toString(), '0008pong0000');
    assert.equal(await getActiveState(name.replace(/\\/g, '/')), 'listening');
  });

  it('a pipe name over 256 characters: ENAMETOOLONG to start, invalid-path to probe', async (t) => {
    const name = '\\\\.\\pipe\\' + 'n'.repeat(260);
    const error = await rejection(createServer(name, () => 'x'));
    assert.equal(error.code, 'ENAMETOOLONG');
    assert.equal(await getActiveState(name), 'invalid-path');
    const longPath = path.join(tempDir(t), 'p'.repeat(240));
    assert.equal((await rejection(sendCommand(longPath, 'x'))).state, 'invalid-path');
  });
});

describe('instances', () => {
  it('many clients on few instances: 1 thread, 200 requests at once, all answered', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (r) => Buffer.concat([Buffer.from('re:'), r]), { threads: 1 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    // Git allows busy clients 30 s on Windows; Wine needs a few ms per
    // connect, so 1 s (the default) is too short for the last of 200.
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => sendCommand(p, `n${i}`, { connectTimeoutMs: 15000 })));
    answers.forEach((a, i) => assert.equal(a.toString(), `re:n${i}`));
    assert.deepEqual(errors, []);
  });

  it('idle connections never make the pipe busy for others (an instance listens in their place)', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, () => 'pong', { threads: 2 });
    for (let i = 0; i < 30; i++) await rawConnect(t, gitPipeName(p));
    // Replacing the last instance taken is asynchronous: wait until one listens.
    await waitFor(async () => (await getActiveState(p)) === 'listening', 3000, 'a listening instance');
    assert.equal((await sendCommand(p, 'x', { waitIfBusy: false })).toString(), 'pong');
  });
});

describe('a busy pipe (every instance taken)', { skip: NEEDS_PROBE }, () => {
  // A one-instance server (the probe addon) whose only instance a first
  // client holds: everyone else gets ERROR_PIPE_BUSY.
  async function busyPipe(t, holdMs) {
    const name = uniquePipeName('busy');
    const id = probe.busyServerStart(name, holdMs);
    let holder;
    await waitFor(
      async () => {
        try {
          holder = await rawConnect(t, name);
          return true;
        } catch {
          return false;
        }
      },
      5000,
      'the busy server',
    );
    const result = async () => {
      let r = null;
      await waitFor(() => (r = probe.busyServerResult(id)) !== null, 10000, 'the busy server to finish');
      return r;
    };
    t.after(async () => {
      holder.destroy();
    });
    return { name, result };
  }

  it('without waitIfBusy: EBUSY at once, state not-listening; getActiveState says not-listening', async (t) => {
    const { name } = await busyPipe(t, 1500);
    const started = Date.now();
    const error = await rejection(sendCommand(name, 'ping', { waitIfBusy: false }));
    assert.equal(error.code, 'EBUSY');
    assert.equal(error.state, 'not-listening');
    assert.ok(Date.now() - started < 500);
    assert.equal(await getActiveState(name), 'not-listening');
  });

  it('waitIfBusy: WaitNamedPipeW until connectTimeoutMs, then ETIMEDOUT / not-listening', async (t) => {
    const { name } = await busyPipe(t, 2000);
    const started = Date.now();
    const error = await rejection(sendCommand(name, 'ping', { connectTimeoutMs: 300 }));
    const took = Date.now() - started;
    assert.equal(error.code, 'ETIMEDOUT');
    assert.equal(error.state, 'not-listening');
    assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
  });

  it('waitIfBusy: connects as soon as the instance is free again, and is served', async (t) => {
    const { name, result } = await busyPipe(t, 400);
    const started = Date.now();
    const answer = await sendCommand(name, 'ping', { connectTimeoutMs: 5000 });
    assert.equal(answer.toString(), 'pong');
    assert.ok(Date.now() - started >= 200);
    assert.equal(await result(), 'served');
  });

  it('the sync client waits the same way', async (t) => {
    const { name } = await busyPipe(t, 2000);
    assert.throws(() => sendCommandSync(name, 'ping', { connectTimeoutMs: 200 }), { code: 'ETIMEDOUT', state: 'not-listening' });
    assert.throws(() => sendCommandSync(name, 'ping', { waitIfBusy: false }), { code: 'EBUSY' });
  });

  it('a cancel ends a busy wait promptly', async (t) => {
    const { name } = await busyPipe(t, 3000);
    const controller = new AbortController();
    const pending = rejection(sendCommand(name, 'ping', { connectTimeoutMs: 5000, signal: controller.signal }));
    await sleep(150);
    const started = Date.now();
    controller.abort();
    assert.equal((await pending).code, 'ABORT_ERR');
    assert.ok(Date.now() - started < 500);
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
    await server.close({ timeoutMs: 0 });
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

describe('peers in other processes', () => {
  it('ctx.peer.pid is the pid of a client in a child process (GetNamedPipeClientProcessId)', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, (_r, _reply, ctx) => JSON.stringify(ctx.peer));
    const script = `require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))}).sendCommand(${JSON.stringify(p)}, 'who').then((b) => console.log('peer ' + b), (e) => console.log('error ' + e.code));`;
    const child = spawnNode(t, ['-e', script]);
    await new Promise((resolve) => child.once('exit', resolve));
    const line = child.output().split(/\r?\n/).find((l) => l.startsWith('peer ') || l.startsWith('error '));
    assert.ok(line?.startsWith('peer '), child.output());
    const peer = JSON.parse(line.slice(5));
    assert.equal(peer.pid, child.pid);
    assert.notEqual(peer.pid, process.pid);
    assert.match(peer.sid, /^S-1-5-/);
  });
});

describe('interop with Node\'s net pipes', () => {
  // A simple-ipc server written by hand on node:net.
  async function netServer(t, name, respond) {
    const server = net.createServer((socket) => {
      let input = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.on('data', (d) => {
        input = Buffer.concat([input, d]);
        const { payload, complete } = unframe(input);
        if (complete) respond(payload, socket);
      });
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, resolve);
    });
    t.after(() => new Promise((resolve) => server.close(resolve)));
    return server;
  }

  it('our client talks to a net server: whole, streamed, large', async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (payload, socket) => socket.end(frame(Buffer.concat([Buffer.from('echo:'), payload]))));
    assert.equal(await getActiveState(name), 'listening');
    assert.equal((await sendCommand(name, 'hi')).toString(), 'echo:hi');
    let streamed = '';
    for await (const chunk of streamCommand(name, 'there')) streamed += chunk;
    assert.equal(streamed, 'echo:there');
    const big = Buffer.alloc(500000, 'b');
    const answer = await sendCommand(name, big);
    assert.equal(answer.length, 500005);
  });

  it('a net server that hangs up before the flush: ERR_IPC_INCOMPLETE_RESPONSE', async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (_payload, socket) => socket.end('0009parti'));
    assert.equal((await rejection(sendCommand(name, 'x'))).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
  });

  it('a net client talks to our server on the derived pipe name', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const { data } = await rawExchange(gitPipeName(p), frame(Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(70000, 'x')])));
    const { payload, complete } = unframe(data);
    assert.ok(complete);
    assert.equal(payload.toString(), 'rcvd:x00070000\n');
  });

  it('our server refuses a name a net server holds (EADDRINUSE)', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (_payload, socket) => socket.end(frame('net')));
    assert.equal((await rejection(createServer(name, () => 'x'))).code, 'EADDRINUSE');
    assert.equal((await sendCommand(name, 'x')).toString(), 'net');
  });

  it('a net server cannot listen on a name our server holds (EADDRINUSE)', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const name = uniquePipeName('ours');
    await serve(t, name, () => 'ours');
    const error = await rejection(netServer(t, name, () => {}));
    assert.equal(error.code, 'EADDRINUSE');
    assert.equal((await sendCommand(name, 'x')).toString(), 'ours');
  });
});
