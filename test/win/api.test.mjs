// The API on Windows: the tests of test/*.test.ts that apply to named
// pipes, ported to node --test (which runs under Wine; see README.md#the-windows-build-and-tests-in-ci-on-linux).
// Where Windows rules differ (docs/protocol.md#windows), the Windows rule is asserted.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';

import {
  bigRow,
  gitPipeName,
  frame,
  hang,
  ipcPath,
  latch,
  NEEDS_WINDOWS_FIRST_INSTANCE,
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
  waitFor,
  waitForLine,
} from './helpers.mjs';

const { connect, createServer, getActiveState, getActiveStateSync, QUIT, sendCommand, sendCommandSync, streamCommand } = sipc;
const fixtures = path.join(repoRoot, 'test', 'fixtures');
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

describe('getActiveState (docs/protocol.md#windows-active-state: WaitNamedPipeW)', () => {
  it('listening', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal(await getActiveState(p), 'listening');
    assert.equal(getActiveStateSync(p), 'listening');
  });

  it('path-not-found when no pipe has the name', async (t) => {
    const p = ipcPath(t);
    assert.equal(await getActiveState(p), 'path-not-found');
    assert.equal(getActiveStateSync(p), 'path-not-found');
  });

  it('invalid-path when the path cannot become a pipe name (its directory does not exist)', async (t) => {
    const p = path.join(tempDir(t), 'missing', 'x.ipc');
    assert.equal(await getActiveState(p), 'invalid-path');
  });

  it('leaves the server undisturbed (the probe never connects)', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    await Promise.all(Array.from({ length: 30 }, () => getActiveState(p)));
    await sleep(50);
    assert.deepEqual(errors, []);
  });
});

describe('connect rules (docs/protocol.md#windows-client)', () => {
  it('ENOENT at once when no pipe has the name (state path-not-found)', async (t) => {
    const p = ipcPath(t);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'ping'));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.syscall, 'connect');
    assert.equal(error.state, 'path-not-found');
    assert.equal(error.address, p);
    assert.ok(Date.now() - started < 1000);
  });

  it('waitIfNotFound: retries every 50 ms until the server appears', async (t) => {
    const p = ipcPath(t);
    setTimeout(() => void serve(t, p), 300);
    assert.equal((await sendCommand(p, 'ping', { waitIfNotFound: true })).toString(), 'pong');
  });

  it('waitIfNotFound: gives up after connectTimeoutMs with path-not-found (as Git on Windows)', async (t) => {
    const p = ipcPath(t);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'ping', { waitIfNotFound: true, connectTimeoutMs: 300 }));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'path-not-found');
    const took = Date.now() - started;
    assert.ok(took >= 200 && took < 2500, `took ${took} ms`);
  });

  it('a path whose directory does not exist: invalid-path', async (t) => {
    const p = path.join(tempDir(t), 'missing', 'x.ipc');
    const error = await rejection(sendCommand(p, 'ping'));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'invalid-path');
  });

  it('throws argument errors synchronously', () => {
    assert.throws(() => sendCommand('', 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => sendCommand('C:\\x', 42), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sendCommand('C:\\x', 'x', { timeoutMs: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createServer('C:\\x', () => 'x', { pipeAccess: 'nobody' }), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('cancellation and timeouts', () => {
  it('timeoutMs ends an exchange the server never answers with ERR_IPC_TIMEOUT', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'x', { timeoutMs: 200 }));
    assert.equal(error.code, 'ERR_IPC_TIMEOUT');
    assert.ok(Date.now() - started < 2000);
  });

  it('an AbortSignal cancels a pending exchange with an AbortError', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang);
    const controller = new AbortController();
    const pending = sendCommand(p, 'x', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('enough')), 50);
    const error = await rejection(pending);
    assert.equal(error.name, 'AbortError');
    assert.equal(error.code, 'ABORT_ERR');
  });

  it('an aborted signal rejects at once', async (t) => {
    const error = await rejection(sendCommand(ipcPath(t), 'x', { signal: AbortSignal.abort() }));
    assert.equal(error.name, 'AbortError');
  });

  it('aborting a stream mid-response ends the iteration with an AbortError', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, async (_r, reply) => {
      await reply.write('one');
      await hang();
    });
    const controller = new AbortController();
    const seen = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of streamCommand(p, 'x', { signal: controller.signal })) {
          seen.push(chunk.toString());
          controller.abort();
        }
      })(),
    );
    assert.equal(error.name, 'AbortError');
    assert.deepEqual(seen, ['one']);
  });

  it('timeoutMs also applies to the sync client', async (t) => {
    const p = ipcPath(t);
    const child = spawnNode(t, [path.join(fixtures, 'hang-server.js'), p]);
    await waitForLine(child, /listening/);
    const started = Date.now();
    assert.throws(() => sendCommandSync(p, 'x', { timeoutMs: 200 }), { code: 'ERR_IPC_TIMEOUT' });
    assert.ok(Date.now() - started < 2000);
  });

  it('100 exchanges in flight leave fs work (libuv pool) unhindered', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang, { threads: 2 });
    const controller = new AbortController();
    const inFlight = Array.from({ length: 100 }, () => sendCommand(p, 'x', { signal: controller.signal }).catch((e) => e));
    await sleep(200);
    const started = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => fs.promises.readFile(path.join(repoRoot, 'package.json'))));
    assert.ok(Date.now() - started < 5000);
    controller.abort();
    const results = await Promise.all(inFlight);
    assert.ok(results.every((r) => r.code === 'ABORT_ERR'));
  });
});

describe('connect() then send()', () => {
  it('connects first and sends one request later', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const connection = await connect(p);
    await sleep(50);
    assert.equal((await connection.send('ping')).toString(), 'pong');
    assert.equal((await rejection(connection.send('ping'))).code, 'ERR_IPC_CONNECTION_USED');
  });

  it('rejects like sendCommand when nothing listens', async (t) => {
    const error = await rejection(connect(ipcPath(t)));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'path-not-found');
  });

  it('close() without sending is a silent probe for the server', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    const connection = await connect(p);
    connection.close();
    await sleep(100);
    assert.deepEqual(errors, []);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });
});

describe('the synchronous client', () => {
  it('talks to a server in another process', async (t) => {
    const p = ipcPath(t);
    const child = spawnNode(t, [path.join(fixtures, 'app-server.js'), p]);
    await waitForLine(child, /listening/);
    assert.equal(sendCommandSync(p, 'ping').toString(), 'pong');
    assert.equal(sendCommandSync(p, 'big').length, 10000 * 81);
    const ballast = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(300000, 'z')]);
    assert.equal(sendCommandSync(p, ballast).toString(), 'rcvd:z00300000\n');
    assert.equal(sendCommandSync(p, '').toString(), 'unhandled command: ');
    assert.equal(getActiveStateSync(p), 'listening');
  });

  it('throws connect errors like the async client', (t) => {
    assert.throws(() => sendCommandSync(ipcPath(t), 'ping'), { code: 'ENOENT', state: 'path-not-found' });
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

  it('close({ timeoutMs: 0 }) drops a handler that never answers; the client gets an error', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, () => {
      inHandler.fire();
      return hang();
    });
    const pending = rejection(sendCommand(p, 'x'));
    await inHandler.fired;
    const started = Date.now();
    await server.close({ timeoutMs: 0 });
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

describe('limits', () => {
  it('maxRequestBytes: the limit is served, one byte more is dropped and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (r) => `got ${r.length}`, { maxRequestBytes: 100000 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    assert.equal((await sendCommand(p, Buffer.alloc(100000))).toString(), 'got 100000');
    const error = await rejection(sendCommand(p, Buffer.alloc(100001)));
    assert.ok(['ERR_IPC_INCOMPLETE_RESPONSE', 'EPIPE'].includes(error.code), error.code);
    await waitFor(() => errors.length === 1, 3000, 'the client error');
    assert.deepEqual(errors, ['ERR_IPC_REQUEST_TOO_LARGE']);
  });

  it('requestTimeoutMs: a client that sends nothing is dropped and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, testAppHandlerOr('ping'), { requestTimeoutMs: 300 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    // Timed from before the connect, so that a slow JS thread here cannot
    // make the drop look early; the upper bound only catches "never".
    const started = Date.now();
    const socket = await rawConnect(t, gitPipeName(p));
    socket.write('00');
    await new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', resolve)));
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 20000, `dropped after ${took} ms`);
    await waitFor(() => errors.length === 1, 2000, 'the client error');
    assert.deepEqual(errors, ['ERR_IPC_REQUEST_TIMEOUT']);
  });

  it('maxConnections: a connection over the limit is closed at once and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, testAppHandlerOr('ping'), { maxConnections: 2 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    await rawConnect(t, gitPipeName(p));
    await rawConnect(t, gitPipeName(p));
    await sleep(300); // the server has counted them
    const error = await rejection(sendCommand(p, 'ping'));
    assert.ok(['ERR_IPC_INCOMPLETE_RESPONSE', 'EPIPE'].includes(error.code), error.code);
    await waitFor(() => errors.length >= 1, 2000, 'the client error');
    assert.equal(errors[0], 'ERR_IPC_TOO_MANY_CONNECTIONS');
  });

  it('allowPeer: a refused peer never reaches the handler; an accepted one does', async (t) => {
    const p = ipcPath(t);
    let allow = false;
    let handled = 0;
    const seen = [];
    await serve(
      t,
      p,
      () => {
        handled++;
        return 'in';
      },
      {
        allowPeer: async (peer) => {
          seen.push(peer);
          await sleep(10);
          return allow;
        },
      },
    );
    assert.ok((await rejection(sendCommand(p, 'x'))).code);
    assert.equal(handled, 0);
    allow = true;
    assert.equal((await sendCommand(p, 'x')).toString(), 'in');
    assert.equal(handled, 1);
    assert.equal(seen[0].pid, process.pid);
    assert.match(seen[0].sid, /^S-1-5-/);
  });

  it('requestTimeoutMs pauses while allowPeer decides and starts anew once it allows', async (t) => {
    const p = ipcPath(t);
    const errors = [];
    const server = await serve(t, p, testAppHandlerOr('ping'), {
      requestTimeoutMs: 300,
      // Three times the request's limit: a deadline still running from the
      // connect would drop the client before the answer.
      allowPeer: async () => {
        await sleep(900);
        return true;
      },
    });
    server.on('clientError', (e) => errors.push(e.code));
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    assert.deepEqual(errors, []);
  });

  it('reply.write() resolves once the bytes are written (backpressure), in order', async (t) => {
    const p = ipcPath(t);
    const written = [];
    await serve(t, p, async (_r, reply) => {
      for (let i = 0; i < 20; i++) {
        await reply.write(Buffer.alloc(50000, 97 + i));
        written.push(i);
      }
    });
    const response = await sendCommand(p, 'x');
    assert.equal(response.length, 20 * 50000);
    for (let i = 0; i < 20; i++) assert.equal(response[i * 50000], 97 + i);
    assert.equal(written.length, 20);
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

  it('an unref()d server lets the process exit', async (t) => {
    const p = ipcPath(t);
    const script = `require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))}).createServer(${JSON.stringify(p)}, () => 'x').then((s) => { s.unref(); console.log('up'); });`;
    const child = spawnNode(t, ['-e', script]);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    assert.match(child.output(), /up/);
  });
});

function testAppHandlerOr(command) {
  return (request) => (request.toString() === command ? 'pong' : 'other');
}
