// Serving on Windows (named pipes): requests and responses of every size,
// the test application, streamed replies, the server's rules (peer, QUIT,
// close, failing handlers, liveness probes, garbage), large chunks sent
// from their own memory, peers in other processes. The tests of
// test/serving.test.ts and its neighbours that apply to named pipes; where
// Windows rules differ (docs/protocol.md#windows), the Windows rule is
// asserted.
import assert from 'node:assert/strict';
import * as path from 'node:path';

import { bigRow, frame, gitPipeName, hang, ipcPath, latch, NEEDS_WINDOWS_FIRST_INSTANCE, rawConnect, rawExchange, rejection, repoRoot, serve, sipc, sleep, spawnNode, tempDir, testAppHandlerOr, unframe, waitFor } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { createServer, getActiveState, QUIT, sendCommand, streamCommand } = sipc;

const rows = (n) => Array.from({ length: n }, (_, i) => bigRow(i)).join('');

describe('requests and responses', () => {
  for (const size of [0, 1, 65516, 65517, 3 * 1024 * 1024]) {
    it(`echoes a ${size}-byte request intact`, async (t) => {
      const p = ipcPath(t);
      await serve(t, p, (request) => request);
      const request = Buffer.alloc(size);
      for (let i = 0; i < size; i++) request[i] = (i * 7 + 3) & 0xff;
      const response = await sendCommand(p, request);
      assert.equal(response.length, size);
      assert.ok(response.equals(request));
    });
  }

  // Without `chunk`: its 10000 awaited writes are 10000 round trips through
  // wineserver (about 2 ms each under Wine, as for Node's own pipes), and
  // add nothing that the streaming tests below do not cover.
  it('runs the test application: ping, big, sendbytes, unknown', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    assert.equal((await sendCommand(p, 'big')).toString(), rows(10000));
    const ballast = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(100000, 'A')]);
    assert.equal((await sendCommand(p, ballast)).toString(), 'rcvd:A00100000\n');
    const mixed = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(10, 'A'), Buffer.from('BB')]);
    assert.equal((await sendCommand(p, mixed)).toString(), 'errs:2\n');
    assert.equal((await sendCommand(p, 'hello')).toString(), 'unhandled command: hello');
  });

  it('streams a slow reply: chunks arrive before the reply ends', async (t) => {
    const p = ipcPath(t);
    let finished = false;
    await serve(t, p, async (_request, reply) => {
      for (let i = 0; i < 5; i++) {
        await reply.write(`row ${i}\n`);
        await sleep(40);
      }
      finished = true;
    });
    const seen = [];
    for await (const chunk of streamCommand(p, 'x')) seen.push([chunk.toString(), finished]);
    assert.equal(seen.map(([c]) => c).join(''), 'row 0\nrow 1\nrow 2\nrow 3\nrow 4\n');
    assert.equal(seen[0][1], false);
    assert.ok(seen.length >= 3);
  });

  it('serves 300 requests issued at once, all answered correctly', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, (request) => Buffer.concat([Buffer.from('re:'), request]), { threads: 4 });
    // Under Wine every connect takes a few ms of wineserver time, so the
    // last of 300 can wait for an instance longer than the default 1 s.
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => sendCommand(p, `n${i}`, { connectTimeoutMs: 15000 })));
    answers.forEach((a, i) => assert.equal(a.toString(), `re:n${i}`));
  });

  it('an empty response is just the flush; empty writes send nothing', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, async (_r, reply) => {
      await reply.write('');
      await reply.write(Buffer.alloc(0));
    });
    const { data } = await rawExchange(gitPipeName(p), frame('x'));
    assert.equal(data.subarray(0, 4).toString(), '0000');
  });

  it('answers in lowercase packets of at most 65516 bytes, then a flush', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, () => Buffer.alloc(70000, 'q'));
    const { data } = await rawExchange(gitPipeName(p), frame('x'));
    assert.equal(data.subarray(0, 4).toString(), 'fff0');
    assert.equal(data.subarray(65520, 65524).toString(), (70000 - 65516 + 4).toString(16).padStart(4, '0'));
    const { payload, complete } = unframe(data);
    assert.ok(complete);
    assert.equal(payload.length, 70000);
  });
});

describe('the server', () => {
  it('gives the handler the peer: pid, no uid/gid, the user SID', async (t) => {
    const p = ipcPath(t);
    let peer;
    await serve(t, p, (_r, _reply, ctx) => {
      peer = ctx.peer;
      return 'ok';
    });
    await sendCommand(p, 'x');
    assert.equal(peer.pid, process.pid);
    assert.equal(peer.uid, null);
    assert.equal(peer.gid, null);
    assert.match(peer.sid, /^S-1-5-/);
  });

  it('QUIT: bare flush to the quitter, running conversations finish, then the pipe is gone', async (t) => {
    const p = ipcPath(t);
    let started;
    const working = new Promise((resolve) => (started = resolve));
    const server = await serve(t, p, async (request, reply) => {
      if (request.toString() === 'quit') return QUIT;
      started();
      for (let i = 0; i < 5; i++) {
        await reply.write(`r${i} `);
        await sleep(50);
      }
      return 'done';
    });
    const running = sendCommand(p, 'work');
    await working; // a conversation in progress when the quit comes
    const { data } = await rawExchange(gitPipeName(p), frame('quit'));
    assert.equal(data.subarray(0, 4).toString(), '0000');
    assert.equal((await running).toString(), 'r0 r1 r2 r3 r4 done');
    assert.equal(await server.closed, 'quit');
    assert.equal(await getActiveState(p), 'path-not-found');
  });

  it('close() lets a running handler finish, then the name is free again', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, async () => {
      inHandler.fire();
      await sleep(200);
      return 'late';
    });
    const pending = sendCommand(p, 'x');
    await inHandler.fired;
    await server.close();
    assert.equal((await pending).toString(), 'late');
    assert.equal(await server.closed, 'closed');
    assert.equal(await getActiveState(p), 'path-not-found');
    const again = await serve(t, p);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    await again.close();
  });

  it('close({ force: true }) drops a handler that never answers; the client gets an error', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, () => {
      inHandler.fire();
      return hang();
    });
    const pending = rejection(sendCommand(p, 'x'));
    await inHandler.fired;
    const started = Date.now();
    await server.close({ force: true });
    assert.ok(Date.now() - started < 2000);
    assert.equal((await pending).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
  });

  it('a handler that throws: incomplete response, handlerError, server goes on', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (request) => {
      if (request.toString() === 'boom') throw new Error('boom');
      return 'fine';
    });
    const reported = [];
    server.on('handlerError', (e) => reported.push(e.message));
    assert.equal((await rejection(sendCommand(p, 'boom'))).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
    assert.deepEqual(reported, ['boom']);
    assert.equal((await sendCommand(p, 'ok')).toString(), 'fine');
  });

  it('a handler that rejects after writing part of the response: never a partial success', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, async (_r, reply) => {
      await reply.write('partial ');
      throw new Error('late failure');
    });
    server.on('handlerError', () => {});
    const chunks = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of streamCommand(p, 'x')) chunks.push(chunk.toString());
      })(),
    );
    assert.equal(error.code, 'ERR_IPC_INCOMPLETE_RESPONSE');
    assert.ok(chunks.join('') === '' || chunks.join('') === 'partial ');
  });

  it('the handler learns through ctx.signal that its client left', async (t) => {
    const p = ipcPath(t);
    let aborted;
    const gotAbort = new Promise((resolve) => (aborted = resolve));
    const inHandler = latch();
    await serve(t, p, async (_r, reply, ctx) => {
      ctx.signal.addEventListener('abort', () => aborted(ctx.signal.reason));
      inHandler.fire();
      await hang();
      await reply.write('never');
    });
    const socket = await rawConnect(t, gitPipeName(p));
    socket.write(frame('x'));
    await inHandler.fired;
    socket.destroy();
    const reason = await gotAbort;
    assert.ok(reason instanceof Error);
  });

  it('ignores connections that send nothing and hang up (liveness probes), silently', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    for (let i = 0; i < 10; i++) (await rawConnect(t, gitPipeName(p))).destroy();
    await sleep(100);
    assert.deepEqual(errors, []);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });

  it('silent connections do not hold the workers: 1 thread, 20 idle clients, others still served', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, testAppHandlerOr('ping'), { threads: 1 });
    for (let i = 0; i < 20; i++) await rawConnect(t, gitPipeName(p));
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 20 }, () => sendCommand(p, 'ping')));
    assert.ok(answers.every((a) => a.toString() === 'pong'));
    assert.ok(Date.now() - started < 5000);
  });

  it('a client sending garbage or vanishing mid-request does not disturb the others', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    const garbage = rawExchange(gitPipeName(p), Buffer.from('zzzzhello'));
    const half = await rawConnect(t, gitPipeName(p));
    half.write('0009pi');
    await sleep(50);
    half.destroy();
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    await garbage;
    await waitFor(() => errors.length === 2, 3000, 'two client errors');
    assert.deepEqual(errors.sort(), ['ERR_IPC_INCOMPLETE_REQUEST', 'ERR_IPC_PROTOCOL']);
  });

  it('fails with ENOENT when the directory does not exist', async (t) => {
    const p = path.join(tempDir(t), 'missing', 'x.ipc');
    assert.equal((await rejection(createServer(p, () => 'x'))).code, 'ENOENT');
  });

  it('a second server on a live path fails with EADDRINUSE and the first keeps serving', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const error = await rejection(createServer(p, () => 'x'));
    assert.equal(error.code, 'EADDRINUSE');
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });
});

describe('large chunks sent from their own memory (borrowed)', () => {
  it('written and returned chunks of 64 KiB and more arrive intact, in order', async (t) => {
    const p = ipcPath(t);
    const parts = [200000, 65536, 3, 1 << 20].map((n, k) => Buffer.alloc(n, 0x61 + k));
    await serve(t, p, async (_r, reply) => {
      await reply.write(parts[0]);
      void reply.write(parts[1]); // not awaited: queued behind the first
      await reply.write(parts[2]);
      return parts[3];
    });
    const response = await sendCommand(p, 'x');
    assert.ok(response.equals(Buffer.concat(parts)));
  });

  it('a client that leaves mid-response: the dropped chunks are released and the server serves on', async (t) => {
    const p = ipcPath(t);
    let writesDone = 0;
    let abortedAtEnd;
    const server = await serve(t, p, async (request, reply, ctx) => {
      if (request.toString() === 'ping') return 'pong';
      const pending = [];
      for (let i = 0; i < 40; i++) pending.push(reply.write(Buffer.alloc(1 << 20, 0x30 + (i % 10))));
      await Promise.all(pending); // resolves, written or dropped
      abortedAtEnd = ctx.signal.aborted;
      writesDone++;
    });
    const stream = streamCommand(p, 'many');
    await stream.next();
    await stream.return();
    await waitFor(() => writesDone === 1, 10000, 'the handler to see its writes settle');
    assert.equal(abortedAtEnd, true);
    await waitFor(() => server.pinned.size === 0, 5000, 'every borrowed chunk to be released');
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
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
